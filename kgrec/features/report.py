"""``kgrec features``: encode a catalog's product texts and evaluate the review-sentiment methods."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kgrec.data.catalog import Catalog
from kgrec.features.build import product_texts
from kgrec.features.sentiment import (
    LABELS,
    choose_method,
    fit_methods,
    lexicon_labels,
    macro_f1,
    review_labels,
    spearman,
)
from kgrec.features.text import TextEncoder, choose_encoder

MIN_LABELLED_REVIEWS = 20


def feature_report(catalog: Catalog, out: str | Path, encoder: str, method: str, epochs: int, seed: int = 0,
                   source: str = "", progress: bool = False) -> dict:
    """Write ``product_text_embeddings.npy`` ``[P, D]`` and ``product_ids.json`` to ``out``, and, when the
    catalog has at least :data:`MIN_LABELLED_REVIEWS` reviews with text and a label (a sentiment label or
    a rating), ``sentiment_report.json`` (held-out evaluation of every method) and the chosen sentiment
    model with its card in ``sentiment_model/``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    texts = product_texts(catalog)
    name, why = choose_encoder(encoder, texts)
    enc = TextEncoder(name, progress=progress)
    product_emb = enc(texts)
    np.save(out / "product_text_embeddings.npy", product_emb)
    (out / "product_ids.json").write_text(json.dumps(catalog.products["product_id"].tolist()), encoding="utf-8")
    reviews = catalog.interactions[catalog.interactions["text"].notna()]
    labels = review_labels(reviews["rating"].to_numpy(dtype="float64"), reviews["sentiment"].to_numpy(dtype=object))
    result = {"products": len(texts), "encoder": enc.identity, "encoder_choice": why,
              "embedding_dim": int(product_emb.shape[1]), "reviews": len(reviews), "out": str(out)}
    if int((labels >= 0).sum()) < MIN_LABELLED_REVIEWS:
        result["sentiment_report"] = None
        result["sentiment_skipped"] = f"fewer than {MIN_LABELLED_REVIEWS} reviews with text and a label or rating"
        return result
    review_texts = reviews["text"].astype(str).tolist()
    report = sentiment_report(review_texts, labels, enc, ratings=reviews["rating"].to_numpy(dtype="float64"),
                              seed=seed, method=method, epochs=epochs, save_dir=out / "sentiment_model",
                              data=source, progress=progress)
    (out / "sentiment_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    result["sentiment_report"] = report
    return result


def sentiment_report(texts: list[str], labels: np.ndarray, encoder: TextEncoder | None,
                     ratings: np.ndarray | None = None, seed: int = 0, test_share: float = 0.2, method: str = "auto",
                     epochs: int = 2, save_dir=None, data: str | None = None, progress: bool = False) -> dict:
    """Held-out evaluation of every sentiment method on one split, against the majority class and VADER.

    ``texts [N]``, ``labels [N]`` (0/1/2, -1 = unlabelled and ignored; see
    :func:`kgrec.features.sentiment.review_labels`), ``encoder``: the text encoder the head uses (None:
    tfidf only). A seeded ``test_share`` of the labelled reviews is held out; the rest trains, with 10 %
    of it as validation. The methods: ``head`` and ``tfidf`` always (``head`` only with an encoder), and
    ``lora``/``full`` when asked for. ``method``: the one the report's ``trained`` row and the saved model
    are (``auto``: the best validation macro-F1 of those trained).
    """
    keep = np.flatnonzero(labels >= 0)
    perm = np.random.default_rng(seed).permutation(keep)
    n_test = max(1, int(len(perm) * test_share))
    test, train = perm[:n_test], perm[n_test:]
    y, y_train = labels[test], labels[train]
    train_texts, test_texts = [texts[i] for i in train], [texts[i] for i in test]

    def scores(pred: np.ndarray) -> dict:
        return {"accuracy": float((pred == y).mean()), "macro_f1": macro_f1(y, pred)}

    methods = (("head",) if encoder is not None else ()) + ("tfidf",) + ((method,) if method in ("lora", "full")
                                                                        else ())
    fitted = fit_methods(train_texts, y_train, encoder, methods, seed=seed, epochs=epochs, progress=progress)
    descriptions = {
        "head": f"linear head on the frozen {getattr(encoder, 'model_name', '')} encoder, class-weighted",
        "tfidf": f"character 1-3-gram TF-IDF + logistic regression (C={fitted['tfidf'].metrics['C']}), class-weighted",
        **{m: f"{m} fine-tuning of the encoder + linear head, class-weighted, warm-started from the frozen head"
           for m in ("lora", "full")},
    }
    probas = {name: f.proba(test_texts) for name, f in fitted.items()}
    rows = {name: {"model": descriptions[name], "val_macro_f1": f.metrics["val_macro_f1"],
                   **scores(probas[name].argmax(1))} for name, f in fitted.items()}
    models = {name: f.model for name, f in fitted.items()}
    chosen = choose_method(fitted, method)
    if chosen not in rows:
        raise ValueError(f"sentiment method {chosen!r} needs a text encoder")
    majority = int(np.bincount(y_train, minlength=3).argmax())
    score = probas[chosen][:, 2] - probas[chosen][:, 0]
    rated = ratings[test] if ratings is not None else np.full(len(test), np.nan)
    report = {
        "trained": {**rows[chosen], "method": chosen},
        "methods": rows,
        "lexicon": {**scores(lexicon_labels(test_texts)), "model": "VADER (vaderSentiment), compound ±0.05; "
                                                                   "an English lexicon"},
        "majority": {**scores(np.full_like(y, majority)), "label": LABELS[majority]},
        "spearman_score_rating": spearman(score[~np.isnan(rated)], rated[~np.isnan(rated)])
        if np.isfinite(rated).sum() > 2 else None,
        "n_train": int(len(train)), "n_test": int(len(test)),
        "label_counts_train": {LABELS[i]: int(c) for i, c in enumerate(np.bincount(y_train, minlength=3))},
        "labels_from": "the reviews' sentiment labels where given, else ratings (≤2 negative, 3 neutral, ≥4 positive)",
        "method": chosen,
        "requested": method,
    }
    if "head" in rows and chosen in ("lora", "full"):
        report["frozen_head"] = rows["head"]
        report["fine_tuning"] = {k: models[chosen].card[k] for k in ("steps", "train_seconds", "val_macro_f1",
                                                                     "trainable_parameters", "hyperparameters")}
    if save_dir is not None:
        report["model_dir"] = str(_save(models[chosen], chosen, encoder, save_dir, report, test_share, seed, data))
    return report


def _save(model, method: str, encoder: TextEncoder | None, save_dir, report: dict, test_share: float, seed: int,
          data: str | None) -> Path:
    """The chosen sentiment model and its card (``card.json`` + ``MODEL_CARD.md``) in ``save_dir``."""
    card = {"data": data or "not recorded",
            "metrics": {k: report[k] for k in ("trained", "frozen_head", "lexicon", "majority") if k in report},
            "methods": report["methods"], "held_out": {"n_test": report["n_test"], "share": test_share, "seed": seed},
            "spearman_score_rating": report["spearman_score_rating"], "labels_from": report["labels_from"]}
    if method == "tfidf":
        return model.save(save_dir, card)
    from kgrec.features.sentiment_finetune import from_frozen_head, save_head

    if method == "head":
        if not encoder.is_transformers:  # the head's weights and card; scoring needs that encoder's vectors
            return save_head(model, encoder.model_name, save_dir, card)
        model = from_frozen_head(model, base=encoder.model_name)
    model.card.update(card)
    return model.save(save_dir)
