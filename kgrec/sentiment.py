"""Review sentiment: a classifier on transformer embeddings, labelled from ratings.

Labels: rating ≤ ``neg_max`` → negative, ≥ ``pos_min`` → positive, otherwise neutral. The classifier
is a linear head on the (frozen) mean-pooled text encoder, trained with class-weighted cross-entropy
(inverse frequency: Amazon reviews are mostly 5★) and early stopping on a validation split. The
score of a review is ``P(positive) − P(negative)`` in [-1, 1], defined for reviews without a rating.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LABELS = ("negative", "neutral", "positive")


def rating_labels(ratings: np.ndarray, neg_max: float = 2.0, pos_min: float = 4.0) -> np.ndarray:
    """``[N]`` float ratings (NaN allowed) → ``[N]`` int labels 0/1/2, -1 where the rating is missing."""
    out = np.full(len(ratings), -1, dtype=np.int64)
    out[ratings <= neg_max] = 0
    out[(ratings > neg_max) & (ratings < pos_min)] = 1
    out[ratings >= pos_min] = 2
    return out


def class_weights(labels) -> "torch.Tensor":
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
                    weight_decay: float = 1e-4, patience: int = 20) -> SentimentModel:
    """Fit the linear head on labelled rows (``labels >= 0``), 10 % of them for early stopping."""
    import torch

    keep = labels >= 0
    x = torch.from_numpy(emb[keep]).float()
    y = torch.from_numpy(labels[keep])
    if len(y) < 10 or len(torch.unique(y)) < 2:
        raise ValueError("too few labelled reviews to train a sentiment model (need ≥ 10 with two classes)")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    n_val = max(1, len(y) // 10)
    val, tr = perm[:n_val], perm[n_val:]
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


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
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


def sentiment_report(texts: list[str], ratings: np.ndarray, emb: np.ndarray, seed: int = 0,
                     test_share: float = 0.2, neg_max: float = 2.0, pos_min: float = 4.0, method: str = "head",
                     base: str = "default", epochs: int = 2, save_dir=None, data: str | None = None,
                     progress: bool = False) -> dict:
    """Held-out evaluation of the sentiment model against the majority class and VADER.

    ``texts [N]``, ``ratings [N]`` (NaN rows are ignored), ``emb [N, D]`` their embeddings by ``base``.
    ``method``: ``head`` (linear head on the frozen encoder), ``lora`` or ``full`` (fine-tuning of
    ``base``, warm-started from the frozen head, which is then reported as the ``frozen_head`` row).
    ``save_dir``: where the trained model and its model card go (see :mod:`kgrec.sentiment_finetune`).
    """
    from .sentiment_finetune import finetune_sentiment, from_frozen_head

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
        "spearman_score_rating": _spearman(score, ratings[test]),
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
