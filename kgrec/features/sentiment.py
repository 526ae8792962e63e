"""Review sentiment: classifiers of review text, labelled from the shop's sentiment labels or ratings.

Labels: a review's own ``sentiment`` label (negative/neutral/positive) when the export has one, else
its rating: ≤ ``neg_max`` → negative, ≥ ``pos_min`` → positive, otherwise neutral. The methods:

- ``head``: a linear head on the frozen text encoder, class-weighted cross-entropy (inverse frequency:
  Amazon reviews are mostly 5★), early stopping on a validation split;
- ``tfidf``: character 1–3-gram TF-IDF + class-weighted logistic regression; any language, no encoder;
- ``lora`` / ``full``: fine-tuning of the encoder (:mod:`kgrec.features.sentiment_finetune`);
- ``auto``: ``head`` and ``tfidf`` on the same validation split, the better macro-F1 wins.

The score of a review is ``P(positive) − P(negative)`` in [-1, 1], defined for reviews without a rating.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LABELS = ("negative", "neutral", "positive")
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}


def rating_labels(ratings: np.ndarray, neg_max: float = 2.0, pos_min: float = 4.0) -> np.ndarray:
    """``[N]`` float ratings (NaN allowed) → ``[N]`` int labels 0/1/2, -1 where the rating is missing."""
    out = np.full(len(ratings), -1, dtype=np.int64)
    out[ratings <= neg_max] = 0
    out[(ratings > neg_max) & (ratings < pos_min)] = 1
    out[ratings >= pos_min] = 2
    return out


def review_labels(ratings: np.ndarray, sentiment: np.ndarray | None = None) -> np.ndarray:
    """``[N]`` labels 0/1/2 (-1: none): the review's own ``sentiment`` label (``[N]`` negative/neutral/
    positive or None) where given, else from its rating (:func:`rating_labels`)."""
    labels = rating_labels(ratings)
    if sentiment is not None:
        given = np.array([LABEL_INDEX.get(v, -1) if isinstance(v, str) else -1 for v in sentiment], dtype=np.int64)
        labels = np.where(given >= 0, given, labels)
    return labels


def class_weights(labels) -> torch.Tensor:
    """Inverse-frequency weights ``[3]`` (float32) for labels 0/1/2: ``n / (3 · n_c)``, 0 for absent classes."""
    import torch

    counts = torch.bincount(torch.as_tensor(labels), minlength=3).float()
    return torch.where(counts > 0, counts.sum() / (3 * counts.clamp(min=1)), torch.zeros(3))


@dataclass
class SentimentModel:
    weight: np.ndarray  # [3, D]
    bias: np.ndarray  # [3]
    metrics: dict

    def proba(self, emb: np.ndarray) -> np.ndarray:
        """``[N, D]`` embeddings → ``[N, 3]`` class probabilities."""
        logits = emb @ self.weight.T + self.bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def score(self, emb: np.ndarray) -> np.ndarray:
        """``[N, D]`` → ``[N]`` scores in [-1, 1]."""
        p = self.proba(emb)
        return p[:, 2] - p[:, 0]


def train_sentiment(emb: np.ndarray, labels: np.ndarray, seed: int = 0, epochs: int = 300, lr: float = 0.05,
                    weight_decay: float = 1e-4, patience: int = 20,
                    split: tuple[np.ndarray, np.ndarray] | None = None) -> SentimentModel:
    """Fit the linear head on labelled rows (``labels >= 0``), 10 % of them for early stopping (``split``:
    (train, val) indices into the labelled rows; default :func:`validation_split`)."""
    import torch

    keep = labels >= 0
    x = torch.from_numpy(emb[keep]).float()
    y = torch.from_numpy(labels[keep])
    if len(y) < 10 or len(torch.unique(y)) < 2:
        raise ValueError("too few labelled reviews to train a sentiment model (need ≥ 10 with two classes)")
    tr, val = (torch.as_tensor(a) for a in (split if split is not None else validation_split(len(y), seed)))
    counts = torch.bincount(y[tr], minlength=3).float()
    class_w = class_weights(y[tr])
    head = torch.nn.Linear(x.shape[1], 3)
    torch.manual_seed(seed)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_w)
    best, best_state, waited = -1.0, None, 0
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(head(x[tr] * 10), y[tr])
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = head(x[val] * 10).argmax(1)
        f1 = macro_f1(y[val].numpy(), pred.numpy())
        if f1 > best:
            best, waited = f1, 0
            best_state = (head.weight.detach().clone() * 10, head.bias.detach().clone())
        else:
            waited += 1
            if waited >= patience:
                break
    w, b = best_state
    return SentimentModel(w.numpy(), b.numpy(), {"val_macro_f1": best, "label_counts": counts.tolist(),
                                                  "class_weights": class_w.tolist()})


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int = 3) -> float:
    """Mean F1 over the classes present in ``y`` or ``pred``."""
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    import pandas as pd

    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def lexicon_labels(texts: list[str]) -> np.ndarray:
    """VADER compound score → label (≥ 0.05 positive, ≤ -0.05 negative, else neutral)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    comp = np.array([sia.polarity_scores(t)["compound"] for t in texts])
    return np.where(comp >= 0.05, 2, np.where(comp <= -0.05, 0, 1))


def validation_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` row indices of ``n`` labelled reviews: a seeded 10 % for early stopping and for
    choosing between sentiment methods (every method sees the same split)."""
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = max(1, n // 10)
    return perm[n_val:], perm[:n_val]


@dataclass
class TfidfSentiment:
    """Character 1–3-gram TF-IDF + class-weighted logistic regression (scikit-learn).

    Works for any language without a tokenizer (Chinese has no spaces between words) and needs no
    encoder. ``C`` is chosen on the validation rows from :data:`TFIDF_C_GRID`, then the model is fitted
    on all the labelled rows.
    """

    pipeline: object  # a fitted sklearn Pipeline(TfidfVectorizer, LogisticRegression)
    metrics: dict

    def proba(self, texts: list[str]) -> np.ndarray:
        """``[N]`` texts → ``[N, 3]`` probabilities of negative/neutral/positive (0 for unseen classes)."""
        p = self.pipeline.predict_proba(texts)
        out = np.zeros((len(texts), 3))
        out[:, self.pipeline.classes_] = p
        return out

    def score(self, texts: list[str]) -> np.ndarray:
        p = self.proba(texts)
        return p[:, 2] - p[:, 0]

    def save(self, path, card: dict | None = None):
        """Write the model as data (``vocabulary.json``, ``weights.npz``; no pickle) and its card."""
        import json
        from pathlib import Path

        from kgrec.features.sentiment_finetune import _card_markdown

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        vec, clf = self.pipeline.steps[0][1], self.pipeline.steps[-1][1]
        vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
        (path / "vocabulary.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        np.savez(path / "weights.npz", idf=vec.idf_, coef=clf.coef_, intercept=clf.intercept_, classes=clf.classes_)
        card = {**(card or {}), "method": "tfidf", "base_model": None, "labels": list(LABELS),
                "hyperparameters": {**TFIDF_PARAMS, "C": self.metrics["C"], "class_weight": "balanced"},
                "val_macro_f1": self.metrics["val_macro_f1"], "label_counts": self.metrics["label_counts"]}
        (path / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
        (path / "MODEL_CARD.md").write_text(_card_markdown(card), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> TfidfSentiment:
        """The model :meth:`save` wrote (plain data, read without pickle)."""
        import json
        from pathlib import Path

        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        path = Path(path)
        card = json.loads((path / "card.json").read_text(encoding="utf-8"))
        vocab = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
        with np.load(path / "weights.npz", allow_pickle=False) as w:
            vec = TfidfVectorizer(vocabulary=vocab, **_tfidf_kwargs())
            vec.idf_ = w["idf"]
            clf = LogisticRegression()
            clf.classes_, clf.coef_, clf.intercept_ = w["classes"], w["coef"], w["intercept"]
        model = make_pipeline(vec, clf)
        return cls(model, {"val_macro_f1": card.get("val_macro_f1"), "C": card["hyperparameters"]["C"],
                           "label_counts": card.get("label_counts")})


TFIDF_PARAMS = {"analyzer": "char_wb", "ngram_range": [1, 3], "min_df": 2, "sublinear_tf": True,
                "max_features": 300_000}


def _tfidf_kwargs() -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in TFIDF_PARAMS.items() if k not in ("min_df",
                                                                                                    "max_features")}


TFIDF_C_GRID = (0.3, 1.0, 3.0, 10.0)
TFIDF_MAX_TRAIN = 100_000  # reviews the TF-IDF model learns from at most (a seeded sample beyond that)


def train_tfidf_sentiment(texts: list[str], labels: np.ndarray, seed: int = 0,
                          split: tuple[np.ndarray, np.ndarray] | None = None) -> TfidfSentiment:
    """Fit on the labelled rows (``labels >= 0``) of ``texts``; ``split`` = (train, val) indices into those
    rows (default :func:`validation_split`). Reports ``val_macro_f1`` like the head does."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    keep = np.flatnonzero(labels >= 0)
    x = [texts[i] for i in keep]
    y = labels[keep]
    if len(y) < 10 or len(np.unique(y)) < 2:
        raise ValueError("too few labelled reviews to train a sentiment model (need ≥ 10 with two classes)")
    tr, val = split if split is not None else validation_split(len(y), seed)
    # bounded time on large exports: the split is already shuffled, so its first rows are a random sample
    tr, val = tr[:TFIDF_MAX_TRAIN], val[:TFIDF_MAX_TRAIN // 5]

    params = {k: tuple(v) if isinstance(v, list) else v for k, v in TFIDF_PARAMS.items()}

    def classifier(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, class_weight="balanced", max_iter=2000)

    # the n-gram vocabulary does not depend on C: fitted and applied once for the whole grid (the pipeline
    # per C refitted it every time: at the mid-size demo shop, 23.2 s → 13.0 s with the same model)
    vectorizer = TfidfVectorizer(**params)
    x_tr, x_val = vectorizer.fit_transform([x[i] for i in tr]), vectorizer.transform([x[i] for i in val])
    scores = {c: macro_f1(y[val], classifier(c).fit(x_tr, y[tr]).predict(x_val)) for c in TFIDF_C_GRID}
    best_c = max(scores, key=lambda c: (scores[c], -c))
    counts = np.bincount(y, minlength=3)
    # C chosen on validation; the model then learns from every labelled row (nothing else is tuned on them)
    rows = np.concatenate([tr, val])
    model = make_pipeline(TfidfVectorizer(**params), classifier(best_c)).fit([x[i] for i in rows], y[rows])
    return TfidfSentiment(model, {"val_macro_f1": scores[best_c], "C": best_c, "label_counts": counts.tolist()})


@dataclass
class FittedSentiment:
    """One trained sentiment method: ``proba(texts [N]) -> [N, 3]``, its metrics (``val_macro_f1`` and what
    the method reports) and the model object that :mod:`kgrec.features.report` saves."""

    proba: Callable[[list[str]], np.ndarray]
    metrics: dict
    model: object


def fit_methods(texts: list[str], labels: np.ndarray, encoder, methods: tuple[str, ...], seed: int = 0,
                epochs: int = 2, progress: bool = False) -> dict[str, FittedSentiment]:
    """Train each of ``methods`` (head, tfidf, lora, full) on ``texts [N]`` / ``labels [N]`` (-1: unlabelled),
    all with one validation split of the labelled rows. ``encoder``: the run's text encoder (head, lora
    and full need it; lora and full start from the head, so it is trained first). Raises ``ValueError``
    with too few labels or without the encoder a method needs."""
    n_labelled = int((labels >= 0).sum())
    if n_labelled < 10 or len(np.unique(labels[labels >= 0])) < 2:
        raise ValueError("too few labelled reviews to train a sentiment model (need ≥ 10 with two classes)")
    tuned_methods = [m for m in methods if m in ("lora", "full")]
    if encoder is None and ("head" in methods or tuned_methods):
        raise ValueError(f"sentiment method {methods[0]!r} needs a text encoder (use tfidf with --no-text)")
    if tuned_methods and not getattr(encoder, "is_transformers", True):
        raise ValueError(f"--sentiment {tuned_methods[0]} fine-tunes a transformers encoder; the run's encoder is "
                         f"{encoder.model_name} (use head or tfidf)")
    split = validation_split(n_labelled, seed)
    out: dict[str, FittedSentiment] = {}
    head = None
    if "head" in methods or tuned_methods:
        emb = encoder(texts)
        head = train_sentiment(emb, labels, seed=seed, split=split)
        # the training texts' embeddings are at hand: scoring them again would re-read the encoder cache
        out["head"] = FittedSentiment(lambda t, h=head, e=emb, src=texts: h.proba(e if t is src else encoder(t)),
                                      head.metrics, head)
    if "tfidf" in methods:
        tfidf = train_tfidf_sentiment(texts, labels, seed=seed, split=split)
        out["tfidf"] = FittedSentiment(tfidf.proba, tfidf.metrics, tfidf)
    for method in tuned_methods:
        from kgrec.features.sentiment_finetune import finetune_sentiment

        tuned = finetune_sentiment(texts, labels, base=encoder.model_name, method=method, init=head, epochs=epochs,
                                   seed=seed, max_length=encoder.max_length, progress=progress)
        out[method] = FittedSentiment(tuned.proba, {"val_macro_f1": tuned.card["val_macro_f1"],
                                                    "fine_tune_seconds": tuned.card["train_seconds"]}, tuned)
    return out


def choose_method(fitted: dict[str, FittedSentiment], method: str) -> str:
    """``method`` itself, or for ``auto`` the fitted one with the best validation macro-F1."""
    return max(fitted, key=lambda m: fitted[m].metrics["val_macro_f1"]) if method == "auto" else method


def fit_sentiment(texts: list[str], labels: np.ndarray, encoder=None, method: str = "auto", seed: int = 0,
                  progress: bool = False) -> tuple[np.ndarray, dict]:
    """Train the sentiment ``method`` on ``texts [N]`` with ``labels [N]`` (-1: unlabelled) and score every
    text: ``([N] scores in [-1, 1], info)``. ``encoder``: the run's :class:`kgrec.features.text.TextEncoder`
    (needed by head, lora and full). Raises ``ValueError`` with too few labels."""
    methods = {"auto": ("head", "tfidf") if encoder is not None else ("tfidf",)}.get(method, (method,))
    fitted = fit_methods(texts, labels, encoder, methods, seed=seed, progress=progress)
    chosen = choose_method(fitted, method)
    proba = fitted[chosen].proba(texts)
    info = {"enabled": True, "method": chosen, "reviews": len(texts), "labelled": int((labels >= 0).sum()),
            **fitted[chosen].metrics,
            "val_macro_f1_by_method": {m: float(f.metrics["val_macro_f1"]) for m, f in fitted.items()}}
    return (proba[:, 2] - proba[:, 0]).astype(np.float32), info
