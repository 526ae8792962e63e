"""Baselines trained in the same run as the GNNs: popularity, trending (time-decayed popularity), item-kNN
(cosine), EASE^R and PyG's LightGCN with its paper's recipe."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import LightGCN

from kgrec.data.interactions import UserItems
from kgrec.models.gnn import normalised_adjacency, propagate


class Popularity:
    """Score = number of training interactions of the product.

    Closed-form models share one contract: ``fit(history, val=None, times=None)`` (a model with a setting
    to choose picks it on ``val``; ``times`` are the pairs' timestamps) and ``score_users(users [B]) -> [B, I]``."""

    def __init__(self, n_users: int, n_items: int):
        self.counts = torch.zeros(n_items)

    def fit(self, history: UserItems, val: UserItems | None = None, times: Tensor | None = None) -> Popularity:
        self.counts = torch.bincount(history.items, minlength=self.counts.numel()).float()
        return self

    def score_users(self, users: Tensor) -> Tensor:
        """``[B]`` user indices → ``[B, I]`` scores."""
        return self.counts.unsqueeze(0).expand(users.numel(), -1)

    def export(self) -> dict[str, Tensor]:
        """The tensors a run folder serves this model from (kgrec.serve.run.PopularityScores)."""
        return {"popularity": self.counts}


def decayed_weights(times: Tensor | None, half_life: float) -> Tensor | None:
    """``times [E]`` epoch seconds (NaN where unknown) → weights ``0.5 ** (age / half_life)`` ``[E]``, ages
    in days before the latest known time; unknown times count as the oldest. ``None`` (no times, or
    ``half_life`` inf) means every interaction weighs 1."""
    if times is None or half_life == float("inf"):
        return None
    t = times.to(torch.float64)
    known = torch.isfinite(t)
    if not bool(known.any()):
        return None
    age = (t[known].max() - torch.where(known, t, t[known].min())) / 86_400.0
    return torch.pow(0.5, age / half_life)


class Trending(Popularity):
    """Time-decayed popularity: ``score(i) = Σ_{training interactions of i} 0.5 ** (age / half_life)``
    (:func:`decayed_weights`). The half-life is chosen on validation NDCG@10 from :attr:`HALF_LIVES`
    (``inf`` is plain popularity)."""

    HALF_LIVES = (1.0, 7.0, 30.0, 90.0, 365.0, float("inf"))

    def __init__(self, n_users: int, n_items: int, half_life: float | None = None):
        super().__init__(n_users, n_items)
        self.half_life = half_life
        self.selection: list[dict] = []

    def _count(self, items: Tensor, times: Tensor | None, half_life: float) -> Tensor:
        w = decayed_weights(times, half_life)
        return torch.bincount(items, weights=w, minlength=self.counts.numel()).float()

    def fit(self, history: UserItems, val: UserItems | None = None, times: Tensor | None = None) -> Trending:
        """``times [len(history)]``: epoch seconds of ``history``'s pairs in its order (``UserItems.align``;
        NaN where unknown; None: no decay)."""
        from kgrec.train.evaluate import evaluate_ranking

        if self.half_life is not None or val is None or len(val) == 0:
            self.half_life = self.half_life or float("inf")
        else:
            best = -1.0
            self.selection = []
            for h in self.HALF_LIVES:
                self.counts = self._count(history.items, times, h)
                ndcg = evaluate_ranking(self.score_users, val, [history], mrr=False).get("ndcg@10", 0.0)
                self.selection.append({"half_life_days": h, "val_ndcg@10": ndcg})
                if ndcg > best:
                    best, self.half_life = ndcg, h
        self.counts = self._count(history.items, times, self.half_life)
        return self

    def export(self) -> dict[str, Tensor]:
        """Served like popularity (kgrec.serve.run.PopularityScores), with its half-life."""
        return {**super().export(), "half_life_days": torch.tensor(float(self.half_life))}


class ItemKNN:
    """Item-based collaborative filtering with cosine similarity of item interaction vectors.

    ``score(u, i) = Σ_{j ∈ history(u)} cos(i, j)``. Similarities are kept dense up to ``dense_max``
    items, otherwise as the top ``neighbours`` per item (computed in chunks).
    """

    def __init__(self, n_users: int, n_items: int, neighbours: int = 200, dense_max: int = 12_000):
        self.n_users, self.n_items = n_users, n_items
        self.neighbours, self.dense_max = neighbours, dense_max

    def fit(self, history: UserItems, val: UserItems | None = None, times: Tensor | None = None) -> ItemKNN:
        self.history = history
        x = history.sparse()  # [U, I] 0/1
        norms = torch.bincount(x.indices()[1], minlength=self.n_items).float().sqrt().clamp(min=1)
        xt = x.t().coalesce()  # [I, U]
        if self.n_items <= self.dense_max:
            sim = torch.sparse.mm(xt, x).to_dense()  # [I, I]
            sim = sim / norms[:, None] / norms[None, :]
            sim.fill_diagonal_(0)
            self.sim = sim
        else:
            self._top_by_chunks(x, xt, norms)
        return self

    def _top_by_chunks(self, x: Tensor, xt: Tensor, norms: Tensor) -> None:
        """The top ``neighbours`` similarities of every product, one dense ``[chunk, I]`` block of
        co-occurrence counts at a time (on the GPU when there is one: at 10⁵ products this is most of
        building the graph). ``x [U, I]``, ``xt [I, U]`` coalesced sparse 0/1; ``norms [I]``."""
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        chunk = 2048 if device.type == "cpu" else max(1, 2**28 // self.n_items)  # a block of ≤ 1 GiB on a GPU
        k = min(self.neighbours, self.n_items)
        owner, user = xt.indices()  # sorted by product
        bounds = torch.searchsorted(owner, torch.arange(0, self.n_items + chunk, chunk).clamp(max=self.n_items))
        xs, norms_d = x.to(device), norms.to(device)
        cols, vals = [], []
        for b, start in enumerate(range(0, self.n_items, chunk)):
            stop, lo, hi = min(start + chunk, self.n_items), int(bounds[b]), int(bounds[b + 1])
            part = torch.sparse_coo_tensor(torch.stack([owner[lo:hi] - start, user[lo:hi]]),
                                           torch.ones(hi - lo), (stop - start, self.n_users), is_coalesced=True,
                                           check_invariants=False).to(device)  # [b, U]
            block = torch.sparse.mm(part, xs).to_dense()  # [b, I] co-occurrence counts
            block.div_(norms_d[start:stop, None]).div_(norms_d[None, :])
            block[torch.arange(stop - start, device=device), torch.arange(start, stop, device=device)] = 0
            v, c = block.topk(k, dim=1)
            cols.append(c.cpu().flatten())
            vals.append(v.float().cpu().flatten())
            del block
        rows = torch.arange(self.n_items).repeat_interleave(k)
        self._top = (torch.cat(cols), torch.cat(vals))  # per product, neighbours by descending similarity
        self.sim = torch.sparse_coo_tensor(torch.stack([rows, self._top[0]]), self._top[1],
                                           (self.n_items, self.n_items), check_invariants=False)
        self.sim_t = self.sim.t().coalesce().to_sparse_csr()  # [I, I], row j = items similar to j

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

    def export(self) -> dict[str, Tensor]:
        """The tensors a run folder serves this model from (kgrec.serve.run.ItemItemScores)."""
        return {"item_item": self.sim if self.sim.layout == torch.strided else self.sim.to_dense()}

    def score_users(self, users: Tensor) -> Tensor:
        if self.sim.layout == torch.strided:
            return self.history.times(users, self.sim)
        hist = self.history.dense(users)  # [B, I]
        return torch.sparse.mm(self.sim_t, hist.t()).t()


class EASE:
    """Steck's EASE^R (WWW 2019): a closed-form linear item-item model.

    ``B = I - P · diag(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹`` and a zero diagonal;
    ``score(u, ·) = x_u B`` for the user's 0/1 history ``x_u [I]``. The L2 weight λ is chosen on
    validation NDCG@10 from :attr:`LAMBDAS` (the grid of the reference harness), extended upwards while
    its largest value is the best (:attr:`MORE_LAMBDAS`). ``XᵀX`` is dense
    ``[I, I]``, so EASE is fitted only up to :attr:`MAX_ITEMS` products.
    """

    LAMBDAS = (1.0, 5.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
    # λ doubled past the grid while the largest one tried is the best, this many times at most: at the
    # mid-size demo shop (149k pairs) validation NDCG@10 still rose from 500 to 1,000 (0.0283 → 0.0287)
    MORE_LAMBDAS = 6
    MAX_ITEMS = 16_000  # float64 Gram and inverse: 2 × 2 GB at the limit

    def __init__(self, n_users: int, n_items: int, lam: float | None = None):
        if n_items > self.MAX_ITEMS:
            raise ValueError(f"EASE needs a dense {n_items}×{n_items} matrix; it is fitted up to "
                             f"{self.MAX_ITEMS:,} products (leave it out of --baselines)")
        self.n_users, self.n_items, self.lam = n_users, n_items, lam
        self.B: Tensor | None = None
        self.history: UserItems | None = None
        self.selection: list[dict] = []

    @staticmethod
    def weights(gram: Tensor, lam: float) -> Tensor:
        """``gram [I, I]`` (float64 ``XᵀX``) → ``B [I, I]`` float32 for one λ. ``XᵀX + λI`` is symmetric
        positive definite, so its inverse goes through a Cholesky factor: half the work of a general
        inverse (2.0 vs 4.0 s at 5,447 products on 2 cores), equal to it within 1e-15."""
        a = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype)
        p = torch.cholesky_inverse(torch.linalg.cholesky(a))
        b = -p / torch.diagonal(p)[None, :]
        b.fill_diagonal_(0.0)
        return b.float()

    def fit(self, history: UserItems, val: UserItems | None = None, times: Tensor | None = None,
            exclude: list[UserItems] | None = None) -> EASE:
        """Fit on ``history``; without a fixed λ, pick it on ``val`` (``exclude``: items not to rank)."""
        from kgrec.train.evaluate import evaluate_ranking

        self.history = history
        x = history.sparse().to(torch.float64)
        gram = torch.sparse.mm(x.t(), x).to_dense()  # [I, I]
        if self.lam is not None or val is None or len(val) == 0:
            self.lam = self.lam if self.lam is not None else 100.0
            self.B = self.weights(gram, self.lam)
            return self
        best, grid = -1.0, list(self.LAMBDAS)
        while grid:
            lam = grid.pop(0)
            self.B = self.weights(gram, lam)
            ndcg = evaluate_ranking(self.score_users, val, exclude or [history], mrr=False).get("ndcg@10", 0.0)
            self.selection.append({"lambda": lam, "val_ndcg@10": ndcg})
            if ndcg > best:
                best, self.lam, kept = ndcg, lam, self.B
                if not grid and len(self.selection) < len(self.LAMBDAS) + self.MORE_LAMBDAS:
                    grid.append(2 * lam)  # the best so far is the largest tried: look further up
        self.B = kept
        return self

    def score_users(self, users: Tensor) -> Tensor:
        """``[B]`` user indices → ``[B, I]`` scores."""
        return self.history.times(users, self.B)

    def export(self) -> dict[str, Tensor]:
        """The tensors a run folder serves this model from (kgrec.serve.run.ItemItemScores)."""
        return {"item_item": self.B}


class LightGCNModel(nn.Module):
    """PyG's ``LightGCN`` on the user–product bipartite graph (users first, then products), trained with
    the recipe of its paper (He et al., SIGIR 2020): 64 dimensions, 3 layers, BPR with one uniform
    negative per positive, Adam at lr 1e-3 and L2 1e-5 on the batch's layer-0 embeddings.

    The paper's batch of 2,048 assumes about a million interactions; on smaller data an epoch would be a
    handful of steps, so the batch shrinks to keep at least :attr:`MIN_STEPS` steps per epoch (see
    :meth:`recipe`). The symmetric normalisation ``D^-1/2 A D^-1/2`` is computed once, not per step, and
    propagation multiplies by it in the backward too (PyG's convolution, through ``torch.sparse.mm``,
    transposed it in every backward: half of a step's time).
    """

    MIN_STEPS = 64

    def __init__(self, n_users: int, n_items: int, hidden: int = 64, num_layers: int = 3):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.model = LightGCN(n_users + n_items, hidden, num_layers)
        for conv in self.model.convs:
            conv.normalize = False  # the adjacency below is normalised once
        self.adj: Tensor | None = None

    @classmethod
    def recipe(cls, n_train: int):
        """The published training recipe for ``n_train`` training interactions."""
        from kgrec.config import OptimConfig

        # up to 1,000 epochs as the reference implementation; patience 200 epochs: with BPR at lr 1e-3 the
        # validation NDCG of a small shop can stay flat for 50+ epochs before it rises (magazine, seeds 1
        # and 2: stopped at epoch 55 with test 0.059 and 0.057 under patience 50; 0.131 and 0.114 under 200)
        # in float32 everywhere, as the reference; every better validation resets the patience. A significant
        # decline (OptimConfig.decline_z) ends it sooner: at 149k pairs (mid-size demo, seed 0) validation
        # peaks at epoch 70 and falls steadily, and training stops at 175 instead of 270, same best epoch
        return OptimConfig(epochs=1000, lr=1e-3, l2=1e-5, batch_size=min(2048, max(64, n_train // cls.MIN_STEPS)),
                           negatives=1, shared_negatives=False, loss="bpr", temperature=(1.0,), patience=200,
                           min_improvement=0.0, eval_every=5, precision="fp32")

    def set_graph(self, users: Tensor, items: Tensor) -> None:
        """The symmetric-normalised bipartite adjacency ``[U + I, U + I]`` of the training pairs."""
        ei = torch.stack([users, items + self.n_users])
        n = self.n_users + self.n_items
        self.adj = normalised_adjacency(torch.cat([ei, ei.flip(0)], 1), n, n)[0]

    def to(self, *args, **kwargs) -> LightGCNModel:
        super().to(*args, **kwargs)
        if self.adj is not None:
            self.adj = self.adj.to(*args, **kwargs)
        return self

    def embed(self, *_: object) -> tuple[Tensor, Tensor]:
        """Returns ``[U, d]`` and ``[I, d]`` propagated embeddings, in float32 also under autocast (the
        recipe's precision; sparse kernels do not multiply a float32 adjacency with bf16)."""
        with torch.autocast(self.adj.device.type, enabled=False):  # = self.model.get_embedding(self.adj)
            x = self.model.embedding.weight
            h = x * self.model.alpha[0]
            for i in range(self.model.num_layers):
                x = propagate(self.adj, self.adj, x)  # the normalised adjacency is symmetric
                h = h + x * self.model.alpha[i + 1]
        return h[: self.n_users], h[self.n_users:]

    def regulariser(self, users: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the layer-0 embeddings of a batch's ``users`` and ``items`` (any shapes)."""
        e = self.model.embedding.weight
        return e[users].pow(2).sum() + e[items + self.n_users].pow(2).sum()
