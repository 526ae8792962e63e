"""Personalised search and user profiles on top of a trained run.

Search blends two z-normalised scores over all products:
``alpha · z(cos(query, product text)) + (1 − alpha) · z(model score for the user)``.
``alpha=1`` is plain semantic search, ``alpha=0`` plain recommendation; the default 0.5 weighs both
equally. The query is embedded with the run's own text encoder.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import torch

from kgrec.data.catalog import Catalog
from kgrec.data.split import split_interactions
from kgrec.errors import RunError, UnknownIdError
from kgrec.features.build import product_texts
from kgrec.features.text import TextEncoder
from kgrec.models.paths import zscore
from kgrec.serve.recommend import Recommender


def load_run_catalog(rec: Recommender) -> Catalog:
    """The run's own copy of its catalog (never the export it was trained from)."""
    return rec.run.catalog()


class Searcher:
    def __init__(self, rec: Recommender, catalog: Catalog, encoder: TextEncoder | None = None):
        self.rec = rec
        self.catalog = catalog
        self.encoder = encoder or TextEncoder(rec.config.encoder)
        order = pd.Index(catalog.products["product_id"]).get_indexer(rec.product_ids)
        if (order < 0).any():  # the stored catalog is the run's own: this is a damaged run folder
            raise RunError(f"{rec.run_dir}: {int((order < 0).sum())} of the run's products are missing from its "
                           f"catalog copy; retrain the run")
        texts = product_texts(catalog)
        self.emb = torch.from_numpy(self.encoder([texts[i] for i in order]))  # [I, D], run product order

    def scores(self, queries: list[str], users: torch.Tensor | None, alpha: float = 0.5) -> torch.Tensor:
        """``[B, I]`` blended scores for B queries (and B users, or None for text only)."""
        q = torch.from_numpy(self.encoder(queries))  # [B, D]
        text = q @ self.emb.T
        if users is None or alpha >= 1.0:
            return text
        personal = self.rec.score_matrix(users)
        if alpha <= 0.0:
            return personal
        return alpha * zscore(text) + (1 - alpha) * zscore(personal)

    def search(self, query: str, user_id: str | None = None, k: int = 10, alpha: float = 0.5,
               exclude_seen: bool = False) -> list[dict]:
        users = self.rec.user_index([user_id]) if user_id is not None else None
        s = self.scores([query], users, alpha)[0].clone()
        if exclude_seen and users is not None:
            s[self.rec.seen.of(int(users[0]))] = -float("inf")
        top = s.topk(min(k, s.numel()))
        return [{"rank": r + 1, "product_id": self.rec.product_ids[i], "title": self.rec.ckpt["titles"][i],
                 "score": float(v)} for r, (v, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()))]


def evaluate_search(searcher: Searcher, alphas=(0.0, 0.5, 1.0), k: int = 20, limit: int = 2000) -> dict:
    """Queries made from held-out test products' category names: Recall@k of the held-out product
    (the user's training items excluded) for each blend weight."""
    rec, cat = searcher.rec, searcher.catalog
    split = split_interactions(cat.interactions, rec.config.split, seed=rec.config.seed)
    leaf = cat.product_categories.drop_duplicates("product_id").set_index("product_id")["category_id"]
    names = cat.categories.set_index("category_id")["name"]
    test = split.test_pairs[split.test_pairs["product_id"].isin(leaf.index)].head(limit)
    if test.empty:
        return {"queries": 0}
    users = rec.user_index(test["user_id"])
    items = rec.product_index(test["product_id"])
    queries = [str(names.get(leaf[p], leaf[p])) for p in test["product_id"]]
    out = {"queries": len(test), "k": k}
    if rec.config.refit:
        out["note"] = ("the served model was refitted on every interaction, these test ones included: the rows "
                       "with alpha < 1 are optimistic (train with --no-refit to measure them)")
    # the user's training items of the split (not the run's: a served refit has trained on the test items too)
    seen = split.train_pairs.groupby("user_id")["product_id"].apply(list)
    excl = [(r, j) for r, u in enumerate(test["user_id"]) for j in rec.product_index(seen.get(u, [])).tolist()]
    rows = torch.tensor([r for r, _ in excl], dtype=torch.long)
    its = torch.tensor([j for _, j in excl], dtype=torch.long)
    for alpha in alphas:
        s = searcher.scores(queries, users, alpha).clone()
        s[rows, its] = -float("inf")
        target = s[torch.arange(len(items)), items]
        rank = (s > target[:, None]).sum(1)
        out[f"recall@{k}_alpha_{alpha}"] = float((rank < k).float().mean())
    return out


def user_profile(catalog: Catalog, user_id: str, top: int = 5) -> dict:
    """Interests (categories, brands, tags weighted by interaction counts), rating tendency, activity."""
    inter = catalog.interactions[catalog.interactions["user_id"] == user_id]
    if inter.empty:
        raise UnknownIdError(f"unknown user id {user_id!r} (no interactions in the catalog)")
    products = inter["product_id"]
    cats = catalog.product_categories.set_index("product_id")["category_id"]
    brands = catalog.products.set_index("product_id")["brand_id"].dropna()
    brand_names = catalog.brands.set_index("brand_id")["name"]
    tags = catalog.product_tags.groupby("product_id")["tag_id"].apply(list)

    def weights(counter: Counter) -> list[dict]:
        total = sum(counter.values()) or 1
        return [{"name": k, "weight": round(v / total, 3), "count": v} for k, v in counter.most_common(top)]

    c_cats = Counter(c for p in products if p in cats.index for c in np.atleast_1d(cats.loc[p]))
    c_brands = Counter(str(brand_names.get(brands[p], brands[p])) for p in products if p in brands.index)
    c_tags = Counter(t for p in products if p in tags.index for t in tags[p])
    ratings = inter["rating"].dropna()
    ts = pd.to_datetime(inter["timestamp"].dropna().astype("int64"), unit="s", utc=True)
    return {
        "user_id": user_id,
        "interactions": int(len(inter)),
        "by_kind": {k: int(v) for k, v in inter["kind"].value_counts().items()},
        "interests": {"categories": weights(c_cats), "brands": weights(c_brands), "tags": weights(c_tags)},
        "rating_tendency": {"mean": float(ratings.mean()) if len(ratings) else None, "count": int(len(ratings))},
        "activity": {
            "first": ts.min().isoformat() if len(ts) else None,
            "last": ts.max().isoformat() if len(ts) else None,
            "busiest_weekday": ts.dt.day_name().mode().iloc[0] if len(ts) else None,
        },
    }
