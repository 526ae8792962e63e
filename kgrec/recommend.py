"""Checkpoints and the Python API: ``Recommender.load(run_dir)``, ``.score``, ``.recommend``.

A run folder holds ``checkpoint.pt`` (tensors, id lists and plain values only, so it loads with
``torch.load(..., weights_only=True)``), ``graph.pt`` (the message-passing graph's tensors) and
``config.json``. Ids in and out are the catalog's own (string) ids.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .interactions import UserItems
from .schema import load_schema

CHECKPOINT_VERSION = 1


def _edge_key(et: tuple[str, str, str]) -> str:
    return "|".join(et)


def save_checkpoint(out: Path, cfg, model, embed_inputs: tuple, prep, device: torch.device, paths=None) -> Path:
    """Write checkpoint.pt and graph.pt for the run's main model (``paths``: its fitted HybridScorer)."""
    from .training import embeddings

    ckpt: dict = {
        "version": CHECKPOINT_VERSION,
        "model": cfg.model,
        "schema_hash": load_schema().digest,
        "id_maps": prep.id_maps.to_dict(),
        "titles": prep.catalog.products.set_index("product_id").reindex(prep.id_maps.ids["product"])["title"]
                  .fillna("").astype(str).tolist(),
        "names": _node_names(prep),
        "train_users": prep.train_index.users, "train_items": prep.train_index.items,
        "seen_users": torch.cat([prep.train_index.users, prep.val_index.users, prep.test_index.users]),
        "seen_items": torch.cat([prep.train_index.items, prep.val_index.items, prep.test_index.items]),
    }
    if hasattr(model, "embed"):
        U, I = embeddings(model, embed_inputs, device)
        for what, t in (("user vectors", U), ("product vectors", I)):
            if not torch.isfinite(t).all():
                raise RuntimeError(f"training produced non-finite {what} ({int((~torch.isfinite(t)).any(1).sum())} "
                                   f"rows); the run is not saved. Lower --lr, or report this with the export")
        ckpt["user_emb"], ckpt["item_emb"] = U, I
        ckpt["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if paths is not None:
            ckpt["paths"] = {"state": paths.prior.state(), "weights": dict(paths.weights)}
    elif cfg.model == "popularity":
        ckpt["popularity"] = model.counts
    else:  # item-kNN and EASE: score = history @ item-item weights [I, I]
        sim = model.B if cfg.model == "ease" else model.sim
        ckpt["item_item"] = sim if sim.layout == torch.strided else sim.to_dense()
    torch.save(ckpt, out / "checkpoint.pt")
    data = prep.data
    graph = {"x": {t: data[t].x.cpu() for t in data.node_types},
             "edge_index": {_edge_key(et): data[et].edge_index.cpu() for et in data.edge_types},
             "norm": {t: {"mean": torch.as_tensor(m, dtype=torch.float32), "std": torch.as_tensor(s, dtype=torch.float32)}
                      for t, (m, s) in prep.feature_norm.items()}}
    target = load_schema().target.triple
    if target in data.edge_types and "edge_attr" in data[target]:
        graph["target_edge_attr"] = data[target].edge_attr.cpu()  # [E, 3] rating/5, has rating, sentiment
    torch.save(graph, out / "graph.pt")
    return out / "checkpoint.pt"


def _node_names(prep) -> dict[str, list[str]]:
    """Display names of category/brand/tag/entity nodes, aligned with the id maps (id when unnamed)."""
    out = {}
    for spec in load_schema().nodes.values():
        if spec.name in ("user", "product") or spec.name not in prep.id_maps.ids:
            continue
        table = prep.catalog.tables[spec.table]
        if "name" not in table.columns:
            continue
        names = dict(zip(table[spec.key], table["name"]))
        out[spec.name] = [n if isinstance(n, str) and n else i for i, n in
                          ((i, names.get(i)) for i in prep.id_maps.ids[spec.name])]
    return out


class Recommender:
    """Scores and top-K lists from a trained run folder."""

    def __init__(self, run_dir: Path, ckpt: dict, config: dict):
        self.run_dir = run_dir
        self.ckpt = ckpt
        self.config = config
        self.model_name: str = ckpt["model"]
        self.user_ids: list[str] = ckpt["id_maps"]["user"]
        self.product_ids: list[str] = ckpt["id_maps"]["product"]
        self._u = {u: i for i, u in enumerate(self.user_ids)}
        self._p = {p: i for i, p in enumerate(self.product_ids)}
        n_u, n_i = len(self.user_ids), len(self.product_ids)
        self.seen = UserItems(ckpt["seen_users"], ckpt["seen_items"], n_u, n_i)
        self.train = UserItems(ckpt["train_users"], ckpt["train_items"], n_u, n_i)
        self._graph: dict | None = None  # graph.pt, loaded on first use
        self._links: dict | None = None  # product → category/brand/tag sets, for reasons
        self._item_users: tuple | None = None  # inverted index of the training interactions
        self.hybrid = None
        if "paths" in ckpt and any(ckpt["paths"]["weights"].values()):
            from .models.paths import HybridScorer, PathPrior

            prior = PathPrior.from_state(self.train, ckpt["paths"]["state"])
            self.hybrid = HybridScorer(self._embedding_scores, prior, ckpt["paths"]["weights"])
        # what is served, named as in metrics.json: the model, plus "+paths" when path scores are added
        self.served_name = f"{self.model_name}+paths" if self.hybrid is not None else self.model_name

    @classmethod
    def load(cls, run_dir: str | Path) -> "Recommender":
        run = Path(run_dir)
        file = run / "checkpoint.pt"
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: train first with 'python train.py --out {run}'")
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{file}: checkpoint version {ckpt.get('version')} is not {CHECKPOINT_VERSION}")
        if ckpt["schema_hash"] != load_schema().digest:
            raise ValueError(f"{file} was trained with another graph_schema (hash mismatch); retrain it")
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        return cls(run, ckpt, config)

    # ------------------------------------------------------------------ ids
    def user_index(self, user_ids) -> torch.Tensor:
        try:
            return torch.tensor([self._u[str(u)] for u in user_ids], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"unknown user id {exc.args[0]!r} (not in the trained catalog)") from None

    def product_index(self, product_ids) -> torch.Tensor:
        try:
            return torch.tensor([self._p[str(p)] for p in product_ids], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"unknown product id {exc.args[0]!r} (not in the trained catalog)") from None

    # ------------------------------------------------------------------ scoring
    def _embedding_scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.ckpt["user_emb"][users] @ self.ckpt["item_emb"].T

    def score_matrix(self, users: torch.Tensor) -> torch.Tensor:
        """``users [B]`` (indices) → ``[B, I]`` scores over all products.

        A GNN run trained with path scores serves ``z(GNN) + Σ_r w_r z(P_r)`` (kgrec.models.paths).
        """
        c = self.ckpt
        if self.hybrid is not None:
            return self.hybrid(users)
        if "user_emb" in c:
            return self._embedding_scores(users)
        if "popularity" in c:
            return c["popularity"].unsqueeze(0).expand(users.numel(), -1).clone()
        return self.train.dense(users) @ c["item_item"]

    def score(self, user_ids, product_ids) -> np.ndarray:
        """Scores ``[len(user_ids), len(product_ids)]`` (higher = more likely to buy)."""
        u, p = self.user_index(user_ids), self.product_index(product_ids)
        return self.score_matrix(u)[:, p].numpy()

    @property
    def graph(self) -> dict:
        """The run's ``graph.pt`` (features, edges, feature norms), loaded once with ``weights_only``."""
        if self._graph is None:
            self._graph = torch.load(self.run_dir / "graph.pt", map_location="cpu", weights_only=True)
        return self._graph

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
        """One line per product: the user's training product that most supports it, and what they share.

        Support is the model's own: for item-kNN and EASE the history item with the largest term of the
        score; for embedding models the history item whose product vector is closest (cosine) to the
        recommended one; popularity names the count. ``kgrec explain`` gives the model-tested paths.
        """
        c, titles = self.ckpt, self.ckpt["titles"]
        history = self.train.of(user)
        if "popularity" in c:
            return [f"popular: chosen by {int(c['popularity'][p])} shoppers in training" for p in products]
        if history.numel() == 0:
            return ["no training history: ranked by the model's product prior" for _ in products]
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
            shared = ""
            for rel, node_type in kinds.items():
                common = links.get(rel, {}).get(j, set()) & links.get(rel, {}).get(p, set())
                if common:
                    shared = f" (same {node_type}: {self.node_name(node_type, min(common))})"
                    break
            if not shared:
                both = len(self._buyers(j) & self._buyers(p))
                shared = (f" ({both} other shopper{'s' if both > 1 else ''} chose both)" if both
                          else " (close to it in the model's embedding space)")
            label = f"“{titles[j][:50]}”" if titles[j] else self.product_ids[j]
            out.append(f"because you chose {label}{shared}")
        return out

    def node_name(self, node_type: str, index: int) -> str:
        """Display name of a category/brand/tag/entity node (its id when the run has no name)."""
        names = self.ckpt.get("names", {}).get(node_type)
        return names[index] if names else self.ckpt["id_maps"][node_type][index]

    def _buyers(self, item: int) -> set[int]:
        """Training users of ``item`` (inverted index built on first use)."""
        if self._item_users is None:
            order = torch.argsort(self.train.items, stable=True)
            items, users = self.train.items[order], self.train.users[order]
            bounds = torch.searchsorted(items, torch.arange(len(self.product_ids) + 1))
            self._item_users = (users, bounds)
        users, bounds = self._item_users
        return set(users[bounds[item]:bounds[item + 1]].tolist())

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True, reasons: bool = True) -> list[dict]:
        """The top-``k`` products for one user: ``[{"rank", "product_id", "title", "score", "reason"}, ...]``."""
        if k < 1:
            raise ValueError("k must be at least 1")
        u = self.user_index([user_id])
        scores = self.score_matrix(u)[0].clone()
        if exclude_seen:
            scores[self.seen.of(int(u[0]))] = -float("inf")
        k = min(k, int(torch.isfinite(scores).sum()))
        top = scores.topk(k)
        items = top.indices.tolist()
        why = self.reasons(int(u[0]), items) if reasons else [None] * len(items)
        rows = [{"rank": r + 1, "product_id": self.product_ids[i], "title": self.ckpt["titles"][i], "score": float(s),
                 "reason": w} for r, (s, i, w) in enumerate(zip(top.values.tolist(), items, why))]
        if not reasons:
            for row in rows:
                del row["reason"]
        return rows
