"""Baselines trained in the same run as the GNNs: popularity, item-kNN (cosine) and PyG's LightGCN."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import LightGCN

from ..interactions import UserItems


class Popularity:
    """Score = number of training interactions of the product."""

    def __init__(self, n_users: int, n_items: int):
        self.counts = torch.zeros(n_items)

    def fit(self, users: Tensor, items: Tensor) -> "Popularity":
        self.counts = torch.bincount(items, minlength=self.counts.numel()).float()
        return self

    def score_users(self, users: Tensor) -> Tensor:
        """``[B]`` user indices → ``[B, I]`` scores."""
        return self.counts.unsqueeze(0).expand(users.numel(), -1)


class ItemKNN:
    """Item-based collaborative filtering with cosine similarity of item interaction vectors.

    ``score(u, i) = Σ_{j ∈ history(u)} cos(i, j)``. Similarities are kept dense up to ``dense_max``
    items, otherwise as the top ``neighbours`` per item (computed in chunks).
    """

    def __init__(self, n_users: int, n_items: int, neighbours: int = 200, dense_max: int = 12_000):
        self.n_users, self.n_items = n_users, n_items
        self.neighbours, self.dense_max = neighbours, dense_max

    def fit(self, users: Tensor, items: Tensor) -> "ItemKNN":
        self.history = UserItems(users, items, self.n_users, self.n_items)
        idx = torch.stack([users, items])
        x = torch.sparse_coo_tensor(idx, torch.ones(users.numel()), (self.n_users, self.n_items),
                                    check_invariants=False).coalesce()
        x = torch.sparse_coo_tensor(x.indices(), torch.ones(x.indices().shape[1]), x.shape).coalesce()
        norms = torch.bincount(x.indices()[1], minlength=self.n_items).float().sqrt().clamp(min=1)
        xt = x.t().coalesce()  # [I, U]
        if self.n_items <= self.dense_max:
            sim = torch.sparse.mm(xt, x).to_dense()  # [I, I]
            sim = sim / norms[:, None] / norms[None, :]
            sim.fill_diagonal_(0)
            self.sim = sim
        else:
            xs = x  # [U, I] sparse COO
            rows, cols, vals = [], [], []
            for start in range(0, self.n_items, 2048):
                stop = min(start + 2048, self.n_items)
                sel = torch.arange(start, stop)
                part = xt.index_select(0, sel).coalesce()  # [b, U] sparse
                block = torch.sparse.mm(part, xs).to_dense() / norms[start:stop, None] / norms[None, :]
                block[torch.arange(stop - start), torch.arange(start, stop)] = 0
                v, c = block.topk(min(self.neighbours, self.n_items), dim=1)
                rows.append(torch.arange(start, stop).repeat_interleave(v.shape[1]))
                cols.append(c.flatten())
                vals.append(v.flatten())
            self._top = (torch.cat(cols), torch.cat(vals))  # per product, neighbours by descending similarity
            self.sim = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals),
                                               (self.n_items, self.n_items))
            self.sim_t = self.sim.t().coalesce().to_sparse_csr()  # [I, I], row j = items similar to j
        return self

    def top_neighbours(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """The ``k`` most similar products of every product with a positive similarity:
        (neighbour ``[E]``, product ``[E]``, cosine ``[E]``)."""
        if self.sim.layout == torch.strided:
            vals, idx = self.sim.topk(min(k, self.n_items), dim=1)  # [I, k]
        else:
            cols, v = self._top
            m = cols.numel() // self.n_items
            idx, vals = cols.view(self.n_items, m)[:, :k], v.view(self.n_items, m)[:, :k]
        keep = vals.flatten() > 0
        items = torch.arange(self.n_items).repeat_interleave(vals.shape[1])
        return idx.flatten()[keep], items[keep], vals.flatten()[keep]

    def score_users(self, users: Tensor) -> Tensor:
        hist = self.history.dense(users)  # [B, I]
        if self.sim.layout == torch.strided:
            return hist @ self.sim
        return torch.sparse.mm(self.sim_t, hist.t()).t()


class LightGCNModel(nn.Module):
    """PyG's ``LightGCN`` on the user–product bipartite graph (users first, then products)."""

    def __init__(self, n_users: int, n_items: int, hidden: int = 64, num_layers: int = 3):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.model = LightGCN(n_users + n_items, hidden, num_layers)
        self.edge_index: Tensor | None = None

    def set_graph(self, users: Tensor, items: Tensor) -> None:
        ei = torch.stack([users, items + self.n_users])
        self.edge_index = torch.cat([ei, ei.flip(0)], 1)

    def embed(self, *_: object) -> tuple[Tensor, Tensor]:
        """Returns ``[U, d]`` and ``[I, d]`` propagated embeddings."""
        h = self.model.get_embedding(self.edge_index)
        return h[: self.n_users], h[self.n_users:]
