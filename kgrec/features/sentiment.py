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
