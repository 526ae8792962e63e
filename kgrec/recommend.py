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


def save_checkpoint(out: Path, cfg, model, embed_inputs: tuple, prep, device: torch.device) -> Path:
    """Write checkpoint.pt and graph.pt for the run's main model."""
    from .training import embeddings

    ckpt: dict = {
        "version": CHECKPOINT_VERSION,
        "model": cfg.model,
        "schema_hash": load_schema().digest,
        "id_maps": prep.id_maps.to_dict(),
        "titles": prep.catalog.products.set_index("product_id").reindex(prep.id_maps.ids["product"])["title"]
                  .fillna("").astype(str).tolist(),
        "train_users": prep.train_index.users, "train_items": prep.train_index.items,
        "seen_users": torch.cat([prep.train_index.users, prep.val_index.users, prep.test_index.users]),
        "seen_items": torch.cat([prep.train_index.items, prep.val_index.items, prep.test_index.items]),
    }
    if hasattr(model, "embed"):
        U, I = embeddings(model, embed_inputs, device)
        ckpt["user_emb"], ckpt["item_emb"] = U, I
        ckpt["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    elif cfg.model == "popularity":
        ckpt["popularity"] = model.counts
    else:  # item-kNN: history and similarities suffice to score
        sim = model.sim
        ckpt["itemknn_sim"] = sim if sim.layout == torch.strided else sim.to_dense()
    torch.save(ckpt, out / "checkpoint.pt")
    data = prep.data
    graph = {"x": {t: data[t].x.cpu() for t in data.node_types},
             "edge_index": {_edge_key(et): data[et].edge_index.cpu() for et in data.edge_types}}
    torch.save(graph, out / "graph.pt")
    return out / "checkpoint.pt"


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
    def score_matrix(self, users: torch.Tensor) -> torch.Tensor:
        """``users [B]`` (indices) → ``[B, I]`` scores over all products."""
        c = self.ckpt
        if "user_emb" in c:
            return c["user_emb"][users] @ c["item_emb"].T
        if "popularity" in c:
            return c["popularity"].unsqueeze(0).expand(users.numel(), -1).clone()
        return self.train.dense(users) @ c["itemknn_sim"]

    def score(self, user_ids, product_ids) -> np.ndarray:
        """Scores ``[len(user_ids), len(product_ids)]`` (higher = more likely to buy)."""
        u, p = self.user_index(user_ids), self.product_index(product_ids)
        return self.score_matrix(u)[:, p].numpy()

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """The top-``k`` products for one user: ``[{"rank", "product_id", "title", "score"}, ...]``."""
        if k < 1:
            raise ValueError("k must be at least 1")
        u = self.user_index([user_id])
        scores = self.score_matrix(u)[0].clone()
        if exclude_seen:
            scores[self.seen.of(int(u[0]))] = -float("inf")
        k = min(k, int(torch.isfinite(scores).sum()))
        top = scores.topk(k)
        return [{"rank": r + 1, "product_id": self.product_ids[i], "title": self.ckpt["titles"][i], "score": float(s)}
                for r, (s, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()))]
