"""Knowledge-graph path scores from a user's history to every product, and the hybrid ranker that adds
them to a GNN's scores.

For an item–item relation r, ``P_r(u, i) = Σ_{j ∈ history(u)} S_r[j, i]``: the weighted count of paths
user → j → … → i through r. The relations, all from the training split and the catalog:

- ``co_interacted``: cosine of the products' interaction vectors (item-kNN), top-``k`` neighbours;
- ``text``: cosine of the products' text embeddings, ``P = (H E) Eᵀ`` (no I×I matrix);
- ``category`` and ``brand``: shared category/brand, each node weighted by 1/its size,
  ``P = (H C D⁻¹) Cᵀ`` (user → product → category → product paths).

:class:`HybridScorer` ranks by ``z(GNN) + Σ_r w_r · z(P_r)``, z-scored per user over all products.
The weights are chosen on the **validation** split (coordinate ascent over a grid of NDCG@10), never
on the test split; the GNN keeps weight 1, so ``w = 0`` everywhere is the plain GNN.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kgrec.data.interactions import UserItems
from kgrec.train.evaluate import evaluate_ranking

RELATIONS = ("co_interacted", "text", "category", "brand")
GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def zscore(x: Tensor) -> Tensor:
    """Standardise each row (the last dimension): ``[..., I]`` → ``[..., I]``."""
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-9)


def _incidence(products: Tensor, nodes: Tensor, n_items: int) -> Tensor:
    """``[I, K]`` sparse CSR product→node incidence, column weights 1/sqrt(node size) (so C Cᵀ = Σ 1/|c|)."""
    k = int(nodes.max()) + 1
    size = torch.bincount(nodes, minlength=k).float()
    vals = size[nodes].rsqrt()
    return (
        torch.sparse_coo_tensor(torch.stack([products, nodes]), vals, (n_items, k), check_invariants=False)
        .coalesce()
        .to_sparse_csr()
    )


class PathPrior:
    """Path scores ``{relation: [B, I]}`` for a batch of users, from their training history."""

    def __init__(
        self,
        history: UserItems,
        co_sim: Tensor | None = None,
        text: Tensor | None = None,
        category: Tensor | None = None,
        brand: Tensor | None = None,
    ):
        """``co_sim``: sparse ``[I, I]``, ``co_sim[i, j] = cos(i, j)`` for j among i's neighbours;
        ``text``: ``[I, D]`` unit rows; ``category``/``brand``: sparse ``[I, K]`` incidences (see
        :func:`_incidence`)."""
        self.history = history
        self.parts = {
            k: v
            for k, v in (("co_interacted", co_sim), ("text", text), ("category", category), ("brand", brand))
            if v is not None
        }
        self._transposed: dict[str, Tensor] = {}  # Cᵀ of the incidences, built on first use

    @classmethod
    def build(
        cls, history: UserItems, text: Tensor | None, edges: dict[str, tuple[Tensor, Tensor]], neighbours: int = 200
    ) -> PathPrior:
        """``edges``: ``{"category": (products [E], nodes [E]), "brand": …}`` from the message-passing graph."""
        from kgrec.models.baselines import ItemKNN

        n = history.n_items
        knn = ItemKNN(history.n_users, n, neighbours=neighbours).fit(history)
        nbr, item, val = knn.top_neighbours(neighbours)
        co = (
            torch.sparse_coo_tensor(torch.stack([item, nbr]), val, (n, n), check_invariants=False)
            .coalesce()
            .to_sparse_csr()
        )
        text = torch.nn.functional.normalize(text.float(), dim=1) if text is not None and text.shape[1] else None
        inc = {k: _incidence(*edges[k], n) for k in ("category", "brand") if k in edges and edges[k][0].numel()}
        return cls(history, co, text, inc.get("category"), inc.get("brand"))

    def scores(self, users: Tensor, names=None) -> dict[str, Tensor]:
        """``users [B]`` → ``{relation: P_r [B, I]}`` for ``names`` (default: every relation)."""
        hist = self.history.dense(users)  # [B, I]
        out = {}
        for name, m in self.parts.items():
            if names is not None and name not in names:
                continue
            if name == "text":  # (H E) Eᵀ
                out[name] = (hist @ m) @ m.T
            elif name == "co_interacted":  # m[i, j] = sim(i, j) for j among i's neighbours: (M Hᵀ)ᵀ
                out[name] = torch.sparse.mm(m, hist.t()).t()
            else:  # incidence C [I, K]: (H C) Cᵀ = (C (Cᵀ Hᵀ))ᵀ
                if name not in self._transposed:
                    self._transposed[name] = m.to_sparse_coo().t().coalesce().to_sparse_csr()
                per_node = torch.sparse.mm(self._transposed[name], hist.t())  # [K, B]
                out[name] = torch.sparse.mm(m, per_node).t()
        return out

    def contributions(self, user: int, product: int) -> tuple[Tensor, dict[str, Tensor]]:
        """What each of ``user``'s history products adds to ``P_r(user, product)``: (history ``[H]``,
        ``{relation: [H]}``); every relation's values sum to its path score."""
        hist = self.history.of(user)
        out = {}
        for name, m in self.parts.items():
            if name == "text":
                out[name] = m[hist] @ m[product]
            elif name == "co_interacted":  # m[i, j] = sim(i, j): row ``product``
                row = m[product].to_dense() if m.layout != torch.strided else m[product]
                out[name] = row[hist]
            else:  # (C Cᵀ)[j, product] = Σ_k C[j, k] C[product, k]
                rows = torch.cat([hist, torch.tensor([product])])
                dense = torch.index_select(m.to_sparse_coo(), 0, rows).to_dense()
                out[name] = dense[:-1] @ dense[-1]
        return hist, out

    def state(self) -> dict:
        """Plain tensors for a ``weights_only`` checkpoint."""
        out = {}
        for name, m in self.parts.items():
            if m.layout == torch.sparse_csr:
                coo = m.to_sparse_coo().coalesce()
                out[name] = {"indices": coo.indices(), "values": coo.values(), "shape": torch.tensor(coo.shape)}
            else:
                out[name] = {"dense": m}
        return out

    @classmethod
    def from_state(cls, history: UserItems, state: dict) -> PathPrior:
        parts = {}
        for name, s in state.items():
            if "dense" in s:
                parts[name] = s["dense"]
            else:
                parts[name] = (
                    torch.sparse_coo_tensor(
                        s["indices"], s["values"], tuple(s["shape"].tolist()), check_invariants=True
                    )
                    .coalesce()
                    .to_sparse_csr()
                )
        return cls(history, parts.get("co_interacted"), parts.get("text"), parts.get("category"), parts.get("brand"))


class HybridScorer:
    """``score(u, ·) = z(base(u, ·)) + Σ_r w_r z(P_r(u, ·))`` for ``users [B]`` → ``[B, I]``."""

    def __init__(self, base: Callable[[Tensor], Tensor] | None, prior: PathPrior, weights: dict[str, float]):
        self.base, self.prior, self.weights = base, prior, dict(weights)

    def terms(self, users: Tensor) -> dict[str, Tensor]:
        """The served score's additive parts for ``users [B]``: ``{"gnn": z(base) [B, I], relation:
        w_r z(P_r) [B, I]}`` (relations of weight 0 left out); they sum to ``self(users)``."""
        out = {"gnn": zscore(self.base(users).float())} if self.base is not None else {}
        used = {name: w for name, w in self.weights.items() if w}
        parts = self.prior.scores(users, used)  # zero-weighted relations are not computed
        for name, w in used.items():
            if name in parts:
                out[name] = w * zscore(parts[name])
        return out

    def __call__(self, users: Tensor) -> Tensor:
        return sum(self.terms(users).values())

    def fit(self, val: UserItems, exclude: list[UserItems], sweeps: int = 2) -> dict:
        """Coordinate ascent of the weights on validation NDCG@10. Returns the search trace."""
        names = [n for n in RELATIONS if n in self.prior.parts]
        self.weights = {n: 0.0 for n in names}
        if self.base is None and names:
            self.weights[names[0]] = 1.0
        best = evaluate_ranking(self, val, exclude).get("ndcg@10", 0.0)
        trace = [{"weights": dict(self.weights), "val_ndcg@10": best}]
        for _ in range(sweeps):
            changed = False
            for name in names:
                for w in GRID:
                    if w == self.weights[name]:
                        continue
                    old = self.weights[name]
                    self.weights[name] = w
                    if self.base is None and not any(self.weights.values()):
                        self.weights[name] = old
                        continue
                    ndcg = evaluate_ranking(self, val, exclude).get("ndcg@10", 0.0)
                    if ndcg > best + 1e-6:
                        best, changed = ndcg, True
                        trace.append({"weights": dict(self.weights), "val_ndcg@10": best})
                    else:
                        self.weights[name] = old
            if not changed:
                break
        return {"weights": dict(self.weights), "val_ndcg@10": best, "trace": trace}
