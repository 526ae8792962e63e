"""Cold start without retraining: new products known only by their text (and category/brand/tags),
and new users known only by a few product ids.

New nodes are appended to the trained message-passing graph with their features and knowledge-graph
edges and a zero id embedding; one forward pass of the trained encoder then gives them vectors in the
same space as everything else (inductive fold-in). New products get the mean product bias. Their
statistic columns (popularity, sentiment aggregates, …) are those of a product nobody has reviewed,
standardised with the training run's own mean and std.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kgrec.data.graph import RECENT_DERIVATION
from kgrec.data.schema import load_schema
from kgrec.errors import KgrecError
from kgrec.features.build import compose_text, standardise, unseen_stats
from kgrec.features.text import TextEncoder
from kgrec.serve.recommend import Recommender


@dataclass
class NewProduct:
    """A product the run has never seen. Category/brand/tag ids must exist in the trained catalog
    (unknown ones are ignored and counted in :attr:`ColdStart.ignored`)."""

    product_id: str
    title: str | None = None
    description: str | None = None
    category_ids: tuple[str, ...] = ()
    brand_id: str | None = None
    brand: str | None = None  # the brand's name for the product text (default: brand_id)
    tag_ids: tuple[str, ...] = ()
    price: float | None = None

    def links(self) -> dict[str, tuple[str, ...]]:
        """The product's catalog edges, by schema relation: ``{"in_category": (...), "made_by": (...), ...}``."""
        return {"in_category": tuple(self.category_ids), "made_by": (self.brand_id,) if self.brand_id else (),
                "has_tag": tuple(self.tag_ids)}

    @classmethod
    def from_dict(cls, raw: dict) -> NewProduct:
        if not raw.get("product_id"):
            raise KgrecError(f"a new product needs a product_id: {raw!r}")
        cats = raw.get("category_ids", raw.get("category_id", ()))
        tags = raw.get("tag_ids", ())
        return cls(str(raw["product_id"]), raw.get("title"), raw.get("description"),
                   (cats,) if isinstance(cats, str) else tuple(map(str, cats)), raw.get("brand_id"), raw.get("brand"),
                   (tags,) if isinstance(tags, str) else tuple(map(str, tags)), raw.get("price"))


@dataclass
class ColdStart:
    """Inductive scoring on top of a trained GNN run folder: its model, graph and feature norms."""

    rec: Recommender
    model: torch.nn.Module
    encoder: TextEncoder | None
    norm: dict
    ignored: dict = field(default_factory=dict)
    _lookups: dict = field(default_factory=dict)  # node type → {catalog id: index}, built on first use

    @classmethod
    def load(cls, run_dir: str | Path, rec: Recommender | None = None) -> ColdStart:
        """The cold-start scorer of ``run_dir`` (pass its loaded ``rec`` to share the model in memory)."""
        rec = rec or Recommender.load(run_dir)
        encoder = TextEncoder(rec.config.encoder, device="cpu") if rec.config.text else None
        return cls(rec, rec.run.gnn(), encoder, rec.graph.get("norm", {}))

    @property
    def x(self) -> dict[str, torch.Tensor]:
        return self.rec.graph["x"]

    @property
    def edges(self) -> dict[tuple[str, str, str], torch.Tensor]:
        return self.rec.run.edges

    # ------------------------------------------------------------------ building the extended graph
    def _stats_row(self, node_type: str, raw: np.ndarray) -> torch.Tensor:
        """Standardise one raw statistics row ``[C]`` with the run's mean/std (the mean when unknown)."""
        norm = self.norm.get(node_type)
        if norm is None:
            return torch.zeros(len(raw))
        return torch.from_numpy(standardise(np.asarray(raw, dtype=np.float64), norm["mean"].double().numpy(),
                                            norm["std"].double().numpy())).float()

    def _lookup(self, node_type: str) -> dict[str, int]:
        if node_type not in self._lookups:
            ids = self.rec.ckpt["id_maps"].get(node_type, [])
            self._lookups[node_type] = {v: i for i, v in enumerate(ids)}
        return self._lookups[node_type]

    def _index(self, node_type: str, ids) -> list[int]:
        """Indices of the known ``ids``; unknown ones are counted in :attr:`ignored`."""
        lookup = self._lookup(node_type)
        out = []
        for v in ids:
            if v in lookup:
                out.append(lookup[v])
            elif v is not None:
                self.ignored[node_type] = self.ignored.get(node_type, 0) + 1
        return out

    def extended_graph(self, products: list[NewProduct] = (), user_items: list[list[str]] = ()):
        """The trained graph plus ``products`` and one new user per list of product ids in ``user_items``.

        Returns ``(x_dict, edge_index_dict)``; new products are indices ``I..I+len(products)-1`` and
        new users ``U..U+len(user_items)-1``.
        """
        x = dict(self.x)
        edges = dict(self.edges)
        n_items, n_users = len(self.rec.product_ids), len(self.rec.user_ids)
        schema = load_schema()

        def add(relation: str, src: list[int], dst: list[int]) -> None:
            spec = schema.edges[relation]
            if not src or spec.triple not in edges:
                return
            ei = torch.tensor([src, dst], dtype=torch.long)
            edges[spec.triple] = torch.cat([edges[spec.triple], ei], 1)
            edges[spec.reverse_triple] = torch.cat([edges[spec.reverse_triple], ei.flip(0)], 1)

        if products:
            parts = []
            if self.encoder is not None:
                parts.append(torch.from_numpy(self.encoder([self.text(p) for p in products])))
            parts.append(torch.stack([self._stats_row("product", unseen_stats("product", price=p.price))
                                      for p in products]))
            new_x = torch.cat(parts, 1).to(x["product"].dtype)
            if new_x.shape[1] != x["product"].shape[1]:
                raise ValueError(f"new product features have {new_x.shape[1]} columns, the run has "
                                 f"{x['product'].shape[1]}; was it trained with another encoder?")
            x["product"] = torch.cat([x["product"], new_x])
            for k, p in enumerate(products):
                for relation, ids in p.links().items():
                    targets = self._index(schema.edges[relation].dst, ids)
                    add(relation, [n_items + k] * len(targets), targets)
        if user_items:
            target = schema.target
            recent_relations = [e for e in schema.edges.values() if e.derived == RECENT_DERIVATION]
            rows = []
            for k, items in enumerate(user_items):
                idx = self._index("product", items)
                if not idx:
                    raise KgrecError("a new user needs at least one known product id")
                add(target.name, [n_users + k] * len(idx), idx)
                recent = list(dict.fromkeys(reversed(idx)))[:self.rec.config.recent_products]  # picks: oldest first
                for spec in recent_relations:
                    add(spec.name, [n_users + k] * len(recent), recent)
                rows.append(self._stats_row("user", unseen_stats("user", interactions=len(idx))))
            new_u = torch.stack(rows).to(x["user"].dtype)[:, : x["user"].shape[1]]
            x["user"] = torch.cat([x["user"], new_u])
        return x, edges

    def text(self, product: NewProduct) -> str:
        """The new product's text, composed like every trained product's (kgrec.features.build)."""
        schema = load_schema()
        values: dict[str, str | None] = {"title": product.title, "description": product.description}
        for relation, ids in product.links().items():
            target = schema.edges[relation].dst
            known = [i for i in ids if i in self._lookup(target)]
            if known:  # the target's text as the run knows it: its name, or its id (a category's path)
                spec = schema.nodes[target]
                uses_id = spec.text[:1] == (spec.key,)
                name = known[0] if uses_id else self.rec.run.node_name(target, self._lookup(target)[known[0]])
                values[relation] = name
            elif ids:
                values[relation] = ids[0]
        if product.brand:
            values["made_by"] = product.brand
        return compose_text(values)

    @torch.no_grad()
    def embed(self, products: list[NewProduct] = (), user_items: list[list[str]] = ()):
        """User vectors ``[U + new users, d + 1]`` and product vectors ``[I + new products, d + 1]``."""
        x, edges = self.extended_graph(products, user_items)
        return self.model.embed(x, edges)

    # ------------------------------------------------------------------ public API
    def score_new_products(self, user_ids: list[str], products: list[NewProduct | dict]) -> np.ndarray:
        """Scores ``[len(user_ids), len(products)]`` of products the run has never seen."""
        products = [p if isinstance(p, NewProduct) else NewProduct.from_dict(p) for p in products]
        U, I = self.embed(products)
        u = self.rec.user_index(user_ids)
        n_items = len(self.rec.product_ids)
        return (U[u] @ I[n_items:].T).numpy()

    def recommend_new_products(self, user_id: str, products: list[NewProduct | dict], k: int = 10) -> list[dict]:
        """The top-``k`` of ``products`` (never seen by the run) for a known user, best first."""
        if k < 1:
            raise KgrecError("k must be at least 1")
        products = [p if isinstance(p, NewProduct) else NewProduct.from_dict(p) for p in products]
        scores = self.score_new_products([user_id], products)[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            {
                "rank": r + 1,
                "product_id": products[i].product_id,
                "title": products[i].title or "",
                "score": float(scores[i]),
                "reason": "new product: scored from its text and catalog links",
            }
            for r, i in enumerate(order)
        ]

    def recommend_new_user(self, product_ids: list[str], k: int = 10) -> list[dict]:
        """Top-``k`` for a shopper known only by ``product_ids``, oldest first (the last ones are linked as
        their recent picks, as training links each user's last products); their picks are excluded."""
        if k < 1:
            raise KgrecError("k must be at least 1")
        U, I = self.embed(user_items=[list(product_ids)])
        n_items = len(self.rec.product_ids)
        scores = U[-1] @ I[:n_items].T
        lookup = self._lookup("product")
        scores[[lookup[p] for p in product_ids if p in lookup]] = -float("inf")  # (unknown ids already counted)
        top = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        titles = self.rec.ckpt["titles"]
        return [
            {"rank": r + 1, "product_id": self.rec.product_ids[i], "title": titles[i], "score": float(s)}
            for r, (s, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()))
        ]


def _recall_ndcg(scores: torch.Tensor, relevant: list[list[int]], k: int) -> tuple[float, float]:
    """``scores [B, C]`` over the cold candidates; ``relevant[b]`` the candidate columns of user b.
    Recall@k and NDCG@k by the project's full-ranking evaluation, with the candidates as the catalog."""
    from kgrec.data.interactions import UserItems
    from kgrec.train.evaluate import evaluate_ranking

    users = torch.tensor([b for b, cols in enumerate(relevant) for _ in cols], dtype=torch.long)
    items = torch.tensor([c for cols in relevant for c in cols], dtype=torch.long)
    targets = UserItems(users, items, scores.shape[0], scores.shape[1])
    m = evaluate_ranking(lambda batch: scores[batch], targets, [], ks=(k,))
    return m[f"recall@{k}"], m[f"ndcg@{k}"]


def evaluate_cold_start(cfg, share: float = 0.1, k: int = 20, seed: int = 0, catalog=None) -> dict:
    """Hold ``share`` of the interacted products out of training entirely, train ``cfg`` (a GNN) on the
    rest, fold the held-out products in from their text and catalog edges, and rank them for every
    training user who interacted with them. The candidates are the held-out products plus every
    product without training interactions. Reports Recall@k / NDCG@k next to text-only nearest
    neighbours (user = mean text embedding of their training products, cosine) and random ranking.
    """
    from dataclasses import replace

    from kgrec.config import GNN_MODELS
    from kgrec.features.build import product_texts
    from kgrec.train.pipeline import load_source, run_training

    if cfg.model not in GNN_MODELS:
        raise ValueError(f"cold start needs a GNN model (rgcn or hgt), not {cfg.model!r}")
    catalog = catalog or load_source(cfg)
    inter = catalog.interactions
    interacted = np.array(sorted(inter["product_id"].unique()))
    rng = np.random.default_rng(seed)
    cold_ids = set(rng.choice(interacted, size=max(1, int(len(interacted) * share)), replace=False).tolist())
    train_cat = catalog.without_products(cold_ids)
    run_cfg = replace(cfg, split="val-only", baselines=(), show_users=0)
    run_training(run_cfg, train_cat)
    cs = ColdStart.load(run_cfg.out)

    prod = catalog.products[catalog.products["product_id"].isin(cold_ids)].reset_index(drop=True)
    cats = catalog.product_categories.groupby("product_id")["category_id"].agg(tuple).to_dict()
    tags = catalog.product_tags.groupby("product_id")["tag_id"].agg(tuple).to_dict()
    brand_name = dict(zip(catalog.brands["brand_id"], catalog.brands["name"]))
    new = [
        NewProduct(
            pid,
            t if isinstance(t, str) else None,
            d if isinstance(d, str) else None,
            cats.get(pid, ()),
            b if isinstance(b, str) else None,
            brand_name.get(b) if isinstance(b, str) else None,
            tags.get(pid, ()),
            None if _missing(pr) else float(pr),
        )
        for pid, t, d, b, pr in zip(
            prod["product_id"], prod["title"], prod["description"], prod["brand_id"], prod["price"]
        )
    ]
    col = {p.product_id: j for j, p in enumerate(new)}
    user_col = {u: i for i, u in enumerate(cs.rec.user_ids)}
    held = inter[inter["product_id"].isin(cold_ids) & inter["user_id"].isin(user_col)]
    relevant_by_user = held.groupby("user_id")["product_id"].agg(lambda s: sorted({col[p] for p in s}))
    users = list(relevant_by_user.index)
    relevant = list(relevant_by_user.values)
    if not users:
        raise ValueError("no training user interacted with a held-out product; raise --share")

    # candidates: the held-out products plus every product of the training catalog that has no training
    # interaction (cold too), so the task does not shrink to a handful of products on small catalogs
    U, I = cs.embed(new)
    u_idx = cs.rec.user_index(users)
    n_items = len(cs.rec.product_ids)
    counts = torch.bincount(cs.rec.train.items, minlength=n_items)
    zero = torch.nonzero(counts == 0).flatten()
    relevant = [[len(zero) + c for c in cols] for cols in relevant]
    cand = torch.cat([I[zero], I[n_items:]])  # [C, d]
    gnn = _recall_ndcg(U[u_idx] @ cand.T, relevant, k)

    enc = cs.encoder or TextEncoder(cfg.encoder, device="cpu")
    train_text = torch.from_numpy(enc(product_texts(train_cat)))  # [I, D], run product order = catalog order
    cold_text = torch.from_numpy(enc([cs.text(p) for p in new]))
    profile = torch.nn.functional.normalize(cs.rec.train.times(u_idx, train_text), dim=1)  # training items' text
    text_knn = _recall_ndcg(profile @ torch.cat([train_text[zero], cold_text]).T, relevant, k)
    gen = torch.Generator().manual_seed(seed)
    rand = _recall_ndcg(torch.rand(len(users), cand.shape[0], generator=gen), relevant, k)
    return {
        "dataset": catalog.source,
        "model": cfg.model,
        "held_out_products": len(new),
        "held_out_share": share,
        "users_evaluated": len(users),
        "held_out_interactions": int(len(held)),
        "held_out_interactions_of_unknown_users": int(inter["product_id"].isin(cold_ids).sum() - len(held)),
        "candidates": int(cand.shape[0]),
        "candidates_without_interactions_in_training": int(len(zero)),
        "k": k,
        "results": {
            cfg.model: {f"recall@{k}": gnn[0], f"ndcg@{k}": gnn[1]},
            "text_knn": {f"recall@{k}": text_knn[0], f"ndcg@{k}": text_knn[1]},
            "random": {f"recall@{k}": rand[0], f"ndcg@{k}": rand[1]},
        },
        "ignored_unknown_ids": cs.ignored,
        "seed": seed,
    }


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
