"""``kgrec features``: encode a catalog's product texts and evaluate the review-sentiment model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kgrec.data.catalog import Catalog
from kgrec.features.build import product_texts
from kgrec.features.sentiment import LABELS, lexicon_labels, macro_f1, rating_labels, spearman, train_sentiment
from kgrec.features.text import TextEncoder

MIN_RATED_REVIEWS = 20


def feature_report(catalog: Catalog, out: str | Path, encoder: str, method: str, epochs: int, seed: int = 0,
                   source: str = "", progress: bool = False) -> dict:
    """Write ``product_text_embeddings.npy`` ``[P, D]`` and ``product_ids.json`` to ``out``, and, when the
    catalog has at least :data:`MIN_RATED_REVIEWS` rated reviews with text, ``sentiment_report.json``
    (held-out evaluation) and the sentiment model with its card in ``sentiment_model/``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    enc = TextEncoder(encoder, progress=progress)
    texts = product_texts(catalog)
    product_emb = enc(texts)
    np.save(out / "product_text_embeddings.npy", product_emb)
    (out / "product_ids.json").write_text(json.dumps(catalog.products["product_id"].tolist()), encoding="utf-8")
    reviews = catalog.interactions[catalog.interactions["text"].notna()]
    result = {"products": len(texts), "encoder": enc.identity, "embedding_dim": int(product_emb.shape[1]),
              "reviews": len(reviews), "out": str(out)}
    if len(reviews) < MIN_RATED_REVIEWS or reviews["rating"].notna().sum() < MIN_RATED_REVIEWS:
        result["sentiment_report"] = None
        result["sentiment_skipped"] = f"fewer than {MIN_RATED_REVIEWS} rated reviews with text"
        return result
    review_texts = reviews["text"].astype(str).tolist()
    report = sentiment_report(review_texts, reviews["rating"].to_numpy(dtype="float64"), enc(review_texts), seed=seed,
                              method=method, base=encoder, epochs=epochs, save_dir=out / "sentiment_model",
                              data=source, progress=progress)
    (out / "sentiment_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    result["sentiment_report"] = report
    return result


def sentiment_report(texts: list[str], ratings: np.ndarray, emb: np.ndarray, seed: int = 0,
                     test_share: float = 0.2, neg_max: float = 2.0, pos_min: float = 4.0, method: str = "head",
                     base: str = "default", epochs: int = 2, save_dir=None, data: str | None = None,
                     progress: bool = False) -> dict:
    """Held-out evaluation of the sentiment model against the majority class and VADER.

    ``texts [N]``, ``ratings [N]`` (NaN rows are ignored), ``emb [N, D]`` their embeddings by ``base``.
    ``method``: ``head`` (linear head on the frozen encoder), ``lora`` or ``full`` (fine-tuning of
    ``base``, warm-started from the frozen head, which is then reported as the ``frozen_head`` row).
    ``save_dir``: where the trained model and its model card go (see :mod:`kgrec.features.sentiment_finetune`).
    """
    from kgrec.features.sentiment_finetune import finetune_sentiment, from_frozen_head

    labels = rating_labels(ratings, neg_max, pos_min)
    keep = np.flatnonzero(labels >= 0)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(keep)
    n_test = max(1, int(len(perm) * test_share))
    test, train = perm[:n_test], perm[n_test:]
    head = train_sentiment(emb[train], labels[train], seed=seed)
    y = labels[test]
    test_texts = [texts[i] for i in test]
    majority = int(np.bincount(labels[train], minlength=3).argmax())
    lex = lexicon_labels(test_texts)

    def scores(p: np.ndarray) -> dict:
        return {"accuracy": float((p == y).mean()), "macro_f1": macro_f1(y, p)}

    head_proba = head.proba(emb[test])
    head_row = {**scores(head_proba.argmax(1)), "model": "linear head on the frozen text encoder, class-weighted"}
    if method == "head":
        trained, score, model = head_row, head_proba[:, 2] - head_proba[:, 0], None
    else:
        model = finetune_sentiment([texts[i] for i in train], labels[train], base=base, method=method, init=head,
                                   epochs=epochs, seed=seed, progress=progress)
        proba = model.proba(test_texts)
        trained = {**scores(proba.argmax(1)), "model": f"{method} fine-tuning of the encoder + linear head, "
                                                       f"class-weighted, warm-started from the frozen head"}
        score = proba[:, 2] - proba[:, 0]
    report = {
        "trained": trained,
        "lexicon": {**scores(lex), "model": "VADER (vaderSentiment), compound ±0.05"},
        "majority": {**scores(np.full_like(y, majority)), "label": LABELS[majority]},
        "spearman_score_rating": spearman(score, ratings[test]),
        "n_train": int(len(train)), "n_test": int(len(test)),
        "label_counts_train": {LABELS[i]: int(c) for i, c in enumerate(np.bincount(labels[train], minlength=3))},
        "thresholds": {"negative_max": neg_max, "positive_min": pos_min},
        "method": method,
    }
    if method != "head":
        report["frozen_head"] = head_row
        report["fine_tuning"] = {k: model.card[k] for k in ("steps", "train_seconds", "val_macro_f1",
                                                            "trainable_parameters", "hyperparameters")}
    if save_dir is not None:
        if model is None:
            model = from_frozen_head(head, base=base)
        model.card.update({"thresholds": report["thresholds"], "data": data or "not recorded",
                           "metrics": {k: report[k] for k in ("trained", "frozen_head", "lexicon", "majority")
                                       if k in report},
                           "held_out": {"n_test": report["n_test"], "share": test_share, "seed": seed},
                           "spearman_score_rating": report["spearman_score_rating"]})
        report["model_dir"] = str(model.save(save_dir))
    return report
