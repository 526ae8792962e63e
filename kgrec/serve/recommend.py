"""The Python API over a run folder: ``Recommender.load(run_dir)``, ``.score``, ``.recommend``.

Everything is read through :func:`kgrec.serve.run.load_run`; ids in and out are the catalog's own
(string) ids. The scores are the served model's (see ``metrics.json``'s ``served`` entry).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kgrec.errors import KgrecError
from kgrec.serve.run import Run, load_run


class Recommender:
    """Scores and top-K lists from a trained run folder."""

    def __init__(self, run: Run):
        self.run = run
        self.run_dir = run.path
        self.ckpt = run.ckpt
        self.config = run.config
        self.model_name: str = run.model_name
        self.served_name: str = run.served_name  # named as in metrics.json
        self.user_ids: list[str] = run.user_ids
        self.product_ids: list[str] = run.product_ids
        self.seen = run.seen
        self.train = run.history
        self.hybrid = run.hybrid
        self._links: dict | None = None  # product → category/brand/tag sets, for reasons
        self._item_users: tuple | None = None  # inverted index of the training interactions

    @classmethod
    def load(cls, run_dir: str | Path) -> Recommender:
        return cls(load_run(run_dir))

    # ------------------------------------------------------------------ ids
    def user_index(self, user_ids) -> torch.Tensor:
        """Rows ``[N]`` of user ids (:class:`kgrec.errors.UnknownIdError` for an unknown one)."""
        return self.run.lookup("user", user_ids)

    def product_index(self, product_ids) -> torch.Tensor:
        return self.run.lookup("product", product_ids)

    # ------------------------------------------------------------------ scoring
    def score_matrix(self, users: torch.Tensor) -> torch.Tensor:
        """``users [B]`` (indices) → ``[B, I]`` scores of the served model over all products.

        A run served with path scores gives ``z(model) + Σ_r w_r z(P_r)`` (kgrec.models.paths).
        """
        return self.run.model.score(users)

    def score(self, user_ids, product_ids) -> np.ndarray:
        """Scores ``[len(user_ids), len(product_ids)]`` (higher = more likely to buy)."""
        u, p = self.user_index(user_ids), self.product_index(product_ids)
        return self.score_matrix(u)[:, p].numpy()

    @property
    def graph(self) -> dict:
        """The run's ``graph.pt`` (features, edges, feature norms)."""
        return self.run.graph

    # ------------------------------------------------------------------ reasons
    def _product_links(self) -> dict[str, dict[int, set[int]]]:
        """``{relation: {product index: {category/brand/tag index}}}`` from the run's graph."""
        if self._links is None:
            self._links = {}
            for key, ei in self.graph["edge_index"].items():
                src, rel, dst = key.split("|")
                if src == "product" and rel in ("in_category", "made_by", "has_tag"):
                    table: dict[int, set[int]] = {}
                    for a, b in zip(ei[0].tolist(), ei[1].tolist()):
                        table.setdefault(a, set()).add(b)
                    self._links[rel] = table
        return self._links

    def reasons(self, user: int, products: list[int]) -> list[str]:
        """One line per product: the user's training product that most supports it, and what they share
        (see :meth:`supports`)."""
        return [s["text"] for s in self.supports(user, products)]

    def supports(self, user: int, products: list[int]) -> list[dict]:
        """Per product, the user's training product that most supports it and what the two share:
        ``{"text", "product": row or None, "relation": schema relation or None, "node": (type, row) or None}``.

        Support is the model's own: for item-kNN and EASE the history item with the largest term of the
        score; for embedding models the history item whose product vector is closest (cosine) to the
        recommended one; popularity names the count. ``kgrec explain`` gives the model-tested paths.
        """
        c, titles = self.ckpt, self.ckpt["titles"]
        history = self.train.of(user)
        none = {"product": None, "relation": None, "node": None}
        if "half_life_days" in c:
            h = float(c["half_life_days"])
            return [{"text": f"trending: {float(c['popularity'][p]):.1f} recent choices "
                             f"(each counted half after {h:g} days)", **none} for p in products]
        if "popularity" in c:
            return [{"text": f"popular: chosen by {int(c['popularity'][p])} shoppers in training", **none}
                    for p in products]
        if history.numel() == 0:
            return [{"text": "no training history: ranked by the model's product prior", **none} for _ in products]
        if "item_emb" in c:
            emb = torch.nn.functional.normalize(c["item_emb"][:, :-1], dim=1)
            support = emb[history] @ emb[products].T  # [H, P]
        else:
            support = c["item_item"][history][:, products]
        best = support.argmax(0).tolist()
        links = self._product_links()
        kinds = {"in_category": "category", "made_by": "brand", "has_tag": "tag"}  # relation → node type
        out = []
        for p, b in zip(products, best):
            j = int(history[b])
            row = {"product": j, "relation": None, "node": None}
            shared = ""
            for rel, node_type in kinds.items():
                common = links.get(rel, {}).get(j, set()) & links.get(rel, {}).get(p, set())
                if common:
                    row.update(relation=rel, node=(node_type, min(common)))
                    shared = f" (same {node_type}: {self.run.node_name(node_type, min(common))})"
                    break
            if not shared:
                both = len(self._buyers(j) & self._buyers(p))
                shared = (f" ({both} other shopper{'s' if both > 1 else ''} chose both)" if both
                          else " (close to it in the model's embedding space)")
            label = f"“{titles[j][:50]}”" if titles[j] else self.product_ids[j]
            out.append({"text": f"because you chose {label}{shared}", **row})
        return out

    def _buyers(self, item: int) -> set[int]:
        """Training users of ``item`` (inverted index built on first use)."""
        if self._item_users is None:
            order = torch.argsort(self.train.items, stable=True)
            items, users = self.train.items[order], self.train.users[order]
            bounds = torch.searchsorted(items, torch.arange(len(self.product_ids) + 1))
            self._item_users = (users, bounds)
        users, bounds = self._item_users
        return set(users[bounds[item]:bounds[item + 1]].tolist())

    def top_k(self, user: int, k: int, exclude_seen: bool = True,
              exact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores ``[k']``, product rows ``[k']``), best first, of user row ``user``.

        Large catalogs go through the run's top-K index (:mod:`kgrec.serve.ann`): candidates from the
        index, the seen products dropped, the rest ranked by the exact served score. ``exact`` scores
        every product instead (what smaller catalogs always do)."""
        seen = self.seen.of(user) if exclude_seen else torch.empty(0, dtype=torch.long)
        index = None if exact else self.run.ann
        if index is not None:
            from kgrec.serve.ann import top_k

            return top_k(lambda n: self.run.retrieval(user, n), index, self.run.score_at(user), seen, k)
        scores = self.score_matrix(torch.tensor([user]))[0].clone()
        scores[seen] = -float("inf")
        top = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        return top.values, top.indices

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True, reasons: bool = True,
                  exact: bool = False) -> list[dict]:
        """The top-``k`` products for one user: ``[{"rank", "product_id", "title", "score", "reason"}, ...]``
        (``exact``: see :meth:`top_k`)."""
        if k < 1:
            raise KgrecError("k must be at least 1")
        u = int(self.user_index([user_id])[0])
        values, indices = self.top_k(u, k, exclude_seen, exact)
        items = indices.tolist()
        why = self.reasons(u, items) if reasons else [None] * len(items)
        rows = [{"rank": r + 1, "product_id": self.product_ids[i], "title": self.ckpt["titles"][i], "score": float(s),
                 "reason": w} for r, (s, i, w) in enumerate(zip(values.tolist(), items, why))]
        if not reasons:
            for row in rows:
                del row["reason"]
        return rows
