"""Trending products: time-decayed popularity over every interaction of the run's catalog.

A product's score is ``Σ 0.5 ** (age / half_life)`` over its interactions, ages in days before the
catalog's latest interaction. The half-life is the one the run's ``trending`` baseline chose on
validation (``metrics.json``), so a run trains with ``trending`` among its baselines (the default).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kgrec.errors import KgrecError, UnknownIdError
from kgrec.models.baselines import decayed_weights


class Trending:
    def __init__(self, run):
        entry = run.metrics.get("models", {}).get("trending")
        if entry is None:
            raise KgrecError(f"{run.path}: this run has no trending baseline; train it with 'trending' among "
                             f"--baselines (the default)")
        half_life = entry.get("half_life_days")
        self.half_life = float("inf") if half_life is None else float(half_life)  # JSON null is "no decay"
        self.catalog = run.catalog()
        inter = self.catalog.interactions
        times = torch.tensor(inter["timestamp"].astype("float64").to_numpy())
        weight = decayed_weights(times, self.half_life)  # the same decay the baseline was chosen with
        weight = np.ones(len(inter)) if weight is None else weight.numpy()
        self.scores = pd.Series(weight, index=inter["product_id"]).groupby(level=0).sum()
        self.titles = self.catalog.products.set_index("product_id")["title"]

    def _in_category(self, category: str) -> set[str]:
        cats = self.catalog.categories
        if category not in set(cats["category_id"]):
            by_name = cats.loc[cats["name"] == category, "category_id"].tolist()
            if not by_name:
                raise UnknownIdError(f"unknown category {category!r}")
            wanted = set(by_name)
        else:
            wanted = {category}
        children = cats.groupby("parent_id")["category_id"].apply(list).to_dict()
        frontier = list(wanted)
        while frontier:  # the category and everything below it
            for c in children.get(frontier.pop(), []):
                if c not in wanted:
                    wanted.add(c)
                    frontier.append(c)
        pc = self.catalog.product_categories
        return set(pc.loc[pc["category_id"].isin(wanted), "product_id"])

    def top(self, k: int = 10, category: str | None = None) -> list[dict]:
        """``[{"rank", "product_id", "title", "score"}]``, optionally within a category (id or name)."""
        if k < 1:
            raise KgrecError("k must be at least 1")
        scores = self.scores
        if category is not None:
            scores = scores[scores.index.isin(self._in_category(category))]
        best = scores.sort_values(ascending=False, kind="stable").head(k)
        return [{"rank": r + 1, "product_id": p, "title": str(self.titles.get(p, "") or ""), "score": float(s)}
                for r, (p, s) in enumerate(best.items())]
