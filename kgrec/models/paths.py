"""Knowledge-graph path scores from a user's history to every product, and the hybrid ranker that adds
them to a GNN's scores.

For an item–item relation r, ``P_r(u, i) = Σ_{j ∈ history(u)} S_r[j, i]``: the weighted count of paths
user → j → … → i through r. The relations, all from the training split and the catalog:

- ``co_interacted``: cosine of the products' interaction vectors (item-kNN), top-``k`` neighbours;
- ``ease``: the item-item weights of EASE^R (Steck, WWW 2019; its L2 weight chosen on validation), the
  ``k`` largest positive ones into each product: the same co-purchase paths weighted by a regression
  instead of a cosine (fitted up to ``EASE.MAX_ITEMS`` products);
- ``text``: cosine of the products' text embeddings, ``P = (H E) Eᵀ`` (no I×I matrix);
- ``category`` and ``brand``: shared category/brand, each node weighted by 1/its size,
  ``P = (H C D⁻¹) Cᵀ`` (user → product → category → product paths).

:class:`HybridScorer` ranks by ``z(GNN) + Σ_r w_r · z(P_r)``, z-scored per user over all products.
The weights are chosen on the **validation** split (coordinate ascent over a grid of NDCG@10, bagged
over bootstrap resamples of the validation users), never on the test split; the GNN keeps weight 1, so
``w = 0`` everywhere is the plain GNN.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kgrec.data.interactions import UserItems
from kgrec.train.evaluate import evaluate_ranking

RELATIONS = ("co_interacted", "text", "category", "brand", "ease")
# item–item relations stored as a sparse ``m [I, I]`` with ``m[i, j]`` the weight of path j → i, kept for
# the ``k`` largest weights into each product i
ITEM_ITEM = ("co_interacted", "ease")
GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
# memory for the weight search's cached terms: at 16,484 validation users × 5,447 products the GNN's and
# five relations' terms would take 2.2 GB, but only the users the search ranks are kept (5,332 with the
# GNN: 0.7 GB), and the search's ~50 rankings then cost about one uncached (benchmarks/midsize.py)
FIT_CACHE_BYTES = 2 << 30
# memory bound on the terms of the users the weight search ranks: past it the search ranks a uniform
# random sample of the validation users whose ranked users' terms fit. At the 1M-interaction demo shop's
# 21,778 products, 10,000 users' terms (the GNN and four relations: no ``ease`` past EASE.MAX_ITEMS) take
# 4.4 GB, and searching with most of them recomputed took over 15 minutes there; 2 GiB holds 4,930 users
SEARCH_BYTES = 2 << 30
# bootstrap resamples of the validation users in the weight search, whose weights are averaged (bagging)
BAG_REPLICATES = 16
# memory for one batch of the check of which validation users the search must rank (_within_reach):
# 1,024 users at 5,447 products take 145 MB; at 148,620 products a batch is 69 users
REACH_BATCH_BYTES = 256 << 20


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


def strongest_into(weights: Tensor, k: int) -> Tensor:
    """``weights [I, I]`` dense, ``weights[j, i]`` the weight of the path j → i, kept sparse: ``[I, I]`` CSR
    ``m`` with ``m[i, j] = weights[j, i]`` for the ``k`` largest positive weights into each product i (the
    layout of the ``co_interacted`` neighbours). At the scientific shop's 4,344 products, EASE^R's top 200
    into each product (4.6 % of the entries, 55 % of the weights' absolute mass) blended with the GNN
    and the other paths as the dense matrix did: validation NDCG@10 0.0972 vs 0.0973."""
    n = weights.shape[0]
    top, src = weights.T.topk(min(k, n), dim=1)  # [I, k]: into each i, its strongest sources j
    keep = top > 0
    dst = torch.arange(n)[:, None].expand_as(src)
    return _item_item(dst[keep], src[keep], top[keep].float(), n)


def _item_item(dst: Tensor, src: Tensor, weight: Tensor, n: int) -> Tensor:
    """``[n, n]`` CSR ``m`` with ``m[dst, src] = weight`` (``[E]`` each): the weight of the path src → dst."""
    return (
        torch.sparse_coo_tensor(torch.stack([dst, src]), weight, (n, n), check_invariants=False)
        .coalesce()
        .to_sparse_csr()
    )


def csr_rows(m: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The stored entries of rows ``rows [R]`` of a CSR matrix: (position in ``rows`` ``[M]``, column ``[M]``,
    value ``[M]``)."""
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    starts, ends = crow[rows], crow[rows + 1]
    lens = ends - starts
    which = torch.repeat_interleave(torch.arange(rows.numel()), lens)
    pos = torch.arange(int(lens.sum())) + torch.repeat_interleave(starts - (lens.cumsum(0) - lens), lens)
    return which, col[pos], val[pos]


class LinearMoments:
    """Mean and standard deviation (unbiased, as :func:`zscore`) of each row of ``q M ᵀ`` for
    ``M [N, d]``, from ``Σ_i M_i`` and ``MᵀM`` without forming the ``[B, N]`` rows."""

    def __init__(self, m: Tensor):
        m64 = m.double()
        self.n = m.shape[0]
        self.total = m64.sum(0)  # [d]
        self.gram = m64.T @ m64  # [d, d]

    def __call__(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """``q [B, d]`` → (mean ``[B]``, std ``[B]``)."""
        q = q.double()
        mean = q @ self.total / self.n
        sq = ((q @ self.gram) * q).sum(1)
        var = (sq - self.n * mean * mean) / max(self.n - 1, 1)
        return mean, var.clamp(min=0).sqrt()


def _standardise(values: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``values [B, C]`` z-scored with each row's ``mean``/``std`` ``[B]`` (as :func:`zscore`)."""
    return ((values.double() - mean[:, None]) / (std[:, None] + 1e-9)).float()


class PathPrior:
    """Path scores ``{relation: [B, I]}`` for a batch of users, from their training history."""

    def __init__(
        self,
        history: UserItems,
        co_sim: Tensor | None = None,
        text: Tensor | None = None,
        category: Tensor | None = None,
        brand: Tensor | None = None,
        ease: Tensor | None = None,
    ):
        """``co_sim``: sparse ``[I, I]``, ``co_sim[i, j] = cos(i, j)`` for j among i's neighbours;
        ``text``: ``[I, D]`` unit rows; ``category``/``brand``: sparse ``[I, K]`` incidences (see
        :func:`_incidence`); ``ease``: sparse ``[I, I]``, ``ease[i, j] = B[j, i]`` (see
        :func:`strongest_into`)."""
        self.history = history
        parts = (("co_interacted", co_sim), ("text", text), ("category", category), ("brand", brand), ("ease", ease))
        self.parts = {k: v for k, v in parts if v is not None}
        self._derived: dict[str, object] = {}  # transposes, moments, Gram matrices: built on first use
        self.ease_lambda: float | None = None  # EASE^R's L2 weight when the pipeline fitted the ``ease`` part

    @classmethod
    def build(
        cls,
        history: UserItems,
        text: Tensor | None,
        edges: dict[str, tuple[Tensor, Tensor]],
        neighbours: int = 200,
        ease: Tensor | None = None,
    ) -> PathPrior:
        """``edges``: ``{"category": (products [E], nodes [E]), "brand": …}`` from the message-passing graph;
        ``ease``: EASE^R's dense ``B [I, I]`` fitted on ``history`` (``B[j, i]``: the weight of j for i), of
        which the ``neighbours`` largest positive weights into each product are kept."""
        from kgrec.models.baselines import ItemKNN

        n = history.n_items
        knn = ItemKNN(history.n_users, n, neighbours=neighbours).fit(history)
        nbr, item, val = knn.top_neighbours(neighbours)
        co = _item_item(item, nbr, val, n)
        text = torch.nn.functional.normalize(text.float(), dim=1) if text is not None and text.shape[1] else None
        inc = {k: _incidence(*edges[k], n) for k in ("category", "brand") if k in edges and edges[k][0].numel()}
        learned = strongest_into(ease, neighbours) if ease is not None else None
        return cls(history, co, text, inc.get("category"), inc.get("brand"), learned)

    def scores(self, users: Tensor, names=None) -> dict[str, Tensor]:
        """``users [B]`` → ``{relation: P_r [B, I]}`` (row-major) for ``names`` (default: every relation)."""
        hist = self.history.dense(users)  # [B, I]
        out = {}
        for name, m in self.parts.items():
            if names is not None and name not in names:
                continue
            if name == "text":  # (H E) Eᵀ
                out[name] = (hist @ m) @ m.T
            elif name in ITEM_ITEM:  # m[i, j]: the weight of j → i, for i's strongest j: (M Hᵀ)ᵀ
                out[name] = torch.sparse.mm(m, hist.t()).t().contiguous()
            else:  # incidence C [I, K]: (H C) Cᵀ = (C (Cᵀ Hᵀ))ᵀ
                mt = self._transposed(name)
                per_node = torch.sparse.mm(mt, hist.t())  # [K, B]
                out[name] = torch.sparse.mm(m, per_node).t().contiguous()
        return out

    def scores_at(self, users: Tensor, items: Tensor, names=None) -> dict[str, Tensor]:
        """The z-scored path scores of ``users [B]`` at ``items [B, C]`` only: ``{relation: [B, C]}``,
        equal to ``zscore(self.scores(users)[r])`` at those items (each row's mean and standard deviation
        over every product are computed exactly, without the ``[B, I]`` rows), for ranking a candidate set
        from a large catalog."""
        rows, hist = self.history.gather(users)
        b, n = users.numel(), self.history.n_items
        out = {}
        for name, m in self.parts.items():
            if names is not None and name not in names:
                continue
            if name == "text":  # q = Σ_{j ∈ history} E_j; P = q · E_i
                q = self.text_query(users)
                out[name] = _standardise((q[:, None, :] * m[items]).sum(-1), *self.text_moments(q))
            elif name in ITEM_ITEM:  # P(u, ·) = Σ_{j ∈ history} m[·, j]: rows j of mᵀ, summed per user
                mt = self._transposed(name)
                which, col, val = csr_rows(mt, hist)
                key, inverse = torch.unique(rows[which] * n + col, return_inverse=True)  # sorted
                summed = torch.zeros(key.numel(), dtype=torch.float64).index_add_(0, inverse, val.double())
                owner = key // n
                total = torch.zeros(b, dtype=torch.float64).index_add_(0, owner, summed)
                sq = torch.zeros(b, dtype=torch.float64).index_add_(0, owner, summed * summed)
                query = torch.arange(b)[:, None] * n + items  # [B, C]
                pos = torch.searchsorted(key, query).clamp(max=max(key.numel() - 1, 0))
                hit = key[pos] == query if key.numel() else torch.zeros_like(query, dtype=torch.bool)
                values = torch.where(hit, summed[pos] if key.numel() else 0.0, 0.0)
                mean = total / n
                std = ((sq - n * mean * mean) / max(n - 1, 1)).clamp(min=0).sqrt()
                out[name] = _standardise(values, mean, std)
            else:  # incidence C [I, K]: w = Σ_{j ∈ history} C_j; P(u, i) = C_i · w
                which, col, val = csr_rows(m, hist)
                w = torch.zeros(b, m.shape[1], dtype=torch.float64)
                w.index_put_((rows[which], col), val.double(), accumulate=True)  # [B, K]
                flat = items.reshape(-1)
                iw, icol, ival = csr_rows(m, flat)
                values = torch.zeros(flat.numel(), dtype=torch.float64).index_add_(
                    0, iw, ival.double() * w[iw // items.shape[1], icol]).view_as(items)
                colsum = self._cached(name + "_colsum", lambda m=m: torch.zeros(m.shape[1], dtype=torch.float64)
                                      .index_add_(0, m.col_indices(), m.values().double()))
                ctc = self._cached(name + "_ctc", lambda m=m: self._gram(m))  # CᵀC [K, K] sparse
                mean = w @ colsum / n
                sq = (torch.sparse.mm(ctc, w.T).T * w).sum(1)  # wᵀ CᵀC w = Σ_i P(u, i)²
                std = ((sq - n * mean * mean) / max(n - 1, 1)).clamp(min=0).sqrt()
                out[name] = _standardise(values, mean, std)
        return out

    def text_query(self, users: Tensor) -> Tensor:
        """``q = Σ_{j ∈ history} E_j`` ``[B, D]``: the text path score of product i is ``q · E_i``."""
        m = self.parts["text"]
        rows, hist = self.history.gather(users)
        return torch.zeros(users.numel(), m.shape[1], dtype=m.dtype).index_add_(0, rows, m[hist])

    def text_moments(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation over every product of ``q · E_i``, ``q [B, D]`` → ``[B]``, ``[B]``."""
        return self._cached("text_moments", lambda: LinearMoments(self.parts["text"]))(q)

    def support(self, user: int, names, n: int) -> Tensor:
        """Products ``[M]`` with the ``n`` largest path scores of ``user`` through each sparse relation in
        ``names`` (co_interacted, ease, category, brand), found from the user's history without scoring every
        product: candidates for ranking a large catalog."""
        hist = self.history.of(user)
        out = [torch.empty(0, dtype=torch.long)]
        for name in names:
            m = self.parts.get(name)
            if m is None or name == "text" or hist.numel() == 0:
                continue
            if name in ITEM_ITEM:  # rows j ∈ history of mᵀ
                mt = self._transposed(name)
                _, col, val = csr_rows(mt, hist)
            else:  # the products of the user's categories/brands, weighted by C_i · w
                _, nodes, weight = csr_rows(m, hist)
                w = torch.zeros(m.shape[1], dtype=torch.float64).index_add_(0, nodes, weight.double())
                ct = self._transposed(name)
                which, col, val = csr_rows(ct, torch.unique(nodes))
                val = val.double() * w[torch.unique(nodes)[which]]
            if col.numel() == 0:
                continue
            items, inverse = torch.unique(col, return_inverse=True)
            total = torch.zeros(items.numel(), dtype=torch.float64).index_add_(0, inverse, val.double())
            out.append(items[total.topk(min(n, items.numel())).indices])
        return torch.unique(torch.cat(out))

    @staticmethod
    def _gram(m: Tensor) -> Tensor:
        coo = m.to_sparse_coo().coalesce().double()
        return torch.sparse.mm(coo.t().coalesce(), coo).coalesce()

    def _transposed(self, name: str) -> Tensor:
        """The CSR transpose of relation ``name``'s matrix (built once)."""
        return self._cached(name + "_t", lambda: self.parts[name].to_sparse_coo().t().coalesce().to_sparse_csr())

    def _cached(self, key: str, make):
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def contributions(self, user: int, product: int) -> tuple[Tensor, dict[str, Tensor]]:
        """What each of ``user``'s history products adds to ``P_r(user, product)``: (history ``[H]``,
        ``{relation: [H]}``); every relation's values sum to its path score."""
        hist = self.history.of(user)
        out = {}
        for name, m in self.parts.items():
            if name == "text":
                out[name] = m[hist] @ m[product]
            elif name in ITEM_ITEM:  # m[i, j]: the weight of j → i: row ``product``
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
        return cls(history, *(parts.get(k) for k in ("co_interacted", "text", "category", "brand", "ease")))


class HybridScorer:
    """``score(u, ·) = z(base(u, ·)) + Σ_r w_r z(P_r(u, ·))`` for ``users [B]`` → ``[B, I]``."""

    def __init__(self, base: Callable[[Tensor], Tensor] | None, prior: PathPrior, weights: dict[str, float],
                 vectors: tuple[Tensor, Tensor] | None = None):
        """``vectors``: the base model's ``(U [n_users, d], I [n_items, d])`` when its scores are ``U Iᵀ``;
        with them :meth:`score_at` ranks a candidate set without scoring every product."""
        self.base, self.prior, self.weights, self.vectors = base, prior, dict(weights), vectors
        self._moments: LinearMoments | None = None

    def terms(self, users: Tensor) -> dict[str, Tensor]:
        """The served score's additive parts for ``users [B]``: ``{"gnn": z(base) [B, I], relation:
        w_r z(P_r) [B, I]}`` (relations of weight 0 left out); they sum to ``self(users)``."""
        return self._weighted(self._z_terms(users, self._used()))  # zero-weighted relations are not computed

    def _z_terms(self, users: Tensor, names) -> dict[str, Tensor]:
        """Unweighted z-scored parts for ``users [B]``: ``{"gnn": z(base), relation: z(P_r)}`` for the
        relations in ``names``, each ``[B, I]``."""
        out = {"gnn": zscore(self.base(users).float())} if self.base is not None else {}
        out.update({name: zscore(part) for name, part in self.prior.scores(users, names).items()})
        return out

    def _factors(self, z: dict[str, Tensor]) -> list[tuple[str, float | None]]:
        """The served score's parts present in ``z`` and their weights (``None``: the GNN's, kept at 1), in
        the order they are added up: the one place that order and the weights are read."""
        out: list[tuple[str, float | None]] = [("gnn", None)] if "gnn" in z else []
        return out + [(name, w) for name, w in self.weights.items() if w and name in z]

    def _weighted(self, z: dict[str, Tensor]) -> dict[str, Tensor]:
        """:meth:`_z_terms` times the current weights (relations of weight 0 left out), each ``[B, I]``."""
        return {name: z[name] if w is None else w * z[name] for name, w in self._factors(z)}

    def _weighted_sum(self, z: dict[str, Tensor]) -> Tensor:
        """The served score ``[B, I]`` from :meth:`_z_terms`: the weighted parts added up in one buffer
        (``total += w · z`` fused, one pass over each part). The same as ``sum(self._weighted(z).values())``
        up to float rounding (the fused multiply-add rounds once)."""
        total = None
        for name, w in self._factors(z):
            if total is None:
                total = z[name].clone() if w is None else torch.mul(z[name], w)
            elif w is None:
                total += z[name]
            else:
                total.add_(z[name], alpha=w)
        if total is None:
            raise ValueError("nothing to score: no base model and every path weight is 0")
        return total

    def __call__(self, users: Tensor) -> Tensor:
        return self._weighted_sum(self._z_terms(users, self._used()))

    def _base_moments(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation over every product of the base scores ``q · I_i`` (``q [B, d]``)."""
        if self._moments is None:
            self._moments = LinearMoments(self.vectors[1])
        return self._moments(q)

    def score_at(self, users: Tensor, items: Tensor) -> Tensor:
        """The served score of ``users [B]`` at ``items [B, C]`` only, equal to ``self(users)`` there (the
        per-user z-scores use moments over every product; see :meth:`PathPrior.scores_at`). Needs the
        base model's vectors."""
        if self.vectors is None and self.base is not None:
            raise ValueError("score_at needs the base model's vectors (an embedding model)")
        total = torch.zeros(items.shape, dtype=torch.float32)
        if self.base is not None:
            U, I = self.vectors
            q = U[users]
            total += _standardise((q[:, None, :] * I[items]).sum(-1), *self._base_moments(q))
        used = {name: w for name, w in self.weights.items() if w}
        for name, part in self.prior.scores_at(users, items, used).items():
            total += used[name] * part
        return total

    def _used(self) -> dict[str, float]:
        return {name: w for name, w in self.weights.items() if w and name in self.prior.parts}

    def linear_items(self) -> Tensor:
        """``[I, d']``: the product side of the served score's linear part, the base model's product
        vectors and, when the text path is weighted, the text embeddings. For ``q =``
        :meth:`linear_query` ``(u)``, ``q · row_i`` is the GNN and text terms of ``score(u, i)`` up to a
        per-user constant: what a maximum-inner-product index retrieves by."""
        parts = [self.vectors[1]] if self.base is not None else []
        if "text" in self._used():
            parts.append(self.prior.parts["text"].float())
        return torch.cat(parts, 1)

    def linear_query(self, users: Tensor) -> Tensor:
        """``[B, d']``, see :meth:`linear_items`."""
        parts = []
        if self.base is not None:
            q = self.vectors[0][users]
            parts.append(q / (self._base_moments(q)[1][:, None].float() + 1e-9))
        used = self._used()
        if "text" in used:
            q = self.prior.text_query(users)
            parts.append(used["text"] * q / (self.prior.text_moments(q)[1][:, None].float() + 1e-9))
        return torch.cat(parts, 1)

    def support(self, user: int, n: int) -> Tensor:
        """Candidates ``[M]`` from the weighted sparse path relations (see :meth:`PathPrior.support`)."""
        return self.prior.support(user, [r for r in self._used() if r != "text"], n)

    def fit(self, val: UserItems, exclude: list[UserItems], sweeps: int = 2,
            cache_bytes: int = FIT_CACHE_BYTES, replicates: int = BAG_REPLICATES, seed: int = 0,
            search_bytes: int = SEARCH_BYTES) -> dict:
        """Choose the weights on validation NDCG@10: coordinate ascent over :data:`GRID`, bagged.

        The ascent (from every weight 0, each relation in turn, the best grid value kept, ``sweeps``
        rounds) runs on the validation users as they are, and on ``replicates`` bootstrap resamples of
        them; the weights are the mean of the resamples' weights (bagging: the blend's score is linear in
        the weights, so that is the mean of the resamples' blended scores). One ascent on a few hundred
        validation users follows their noise: on the magazine shop's 341 it set a relation's weight to 0
        that item-kNN on its own shows to be worth +0.05 NDCG@10 on purchases held out of the export.
        ``replicates=0``, or a validation split without users, serves the plain ascent's weights.

        Returns ``{"weights", "val_ndcg@10"`` (of those weights, on the searched users)``, "ascent"`` (the
        plain ascent's weights)``, "replicates"`` (each resample's weights)``, "trace"`` (the plain ascent's
        steps)``, "val_users", "searched_users"`` (the users the search stands for: all of them, or the
        sample below)``, "ranked_users"`` (those whose ranking can change, :func:`_within_reach`)``,
        "sample"`` (the searched users' ids ``[n]``)``}``.
        Each ranking of the validation users is computed once per weight vector (:class:`_Landscape`);
        the z-scored terms of the first ``cache_bytes`` worth of users are reused (:class:`_TermCache`),
        with the same result as computing them every time. When the ranked users' terms would take more
        than ``search_bytes``, the search runs on a uniform random sample of the validation users (seeded
        by ``seed``) whose ranked users' terms fit, so that every ranking comes from the cache when
        ``cache_bytes >= search_bytes``."""
        names = [n for n in RELATIONS if n in self.prior.parts]
        landscape = _Landscape(self, names, val, exclude, cache_bytes, search_bytes,
                               torch.Generator().manual_seed(seed))
        trace: list[dict] = []
        ascent = landscape.ascent(None, sweeps, trace)
        chosen = landscape.resampled(None, replicates, sweeps, torch.Generator().manual_seed(seed))
        self.weights = _mean_weights(chosen, names) if chosen else dict(ascent)
        return {"weights": dict(self.weights), "val_ndcg@10": landscape.mean(self.weights), "ascent": ascent,
                "replicates": chosen, "trace": trace, "val_users": landscape.all_users,
                "searched_users": landscape.n_users, "ranked_users": int(landscape.ranked.numel()),
                "sample": landscape.users}


def _mean_weights(chosen: list[dict[str, float]], names: list[str]) -> dict[str, float]:
    return {n: sum(w[n] for w in chosen) / len(chosen) for n in names}


class _Landscape:
    """Per-user validation NDCG@10 of a :class:`HybridScorer` under weight vectors, each computed once: the
    bagged weight search ranks the same vectors for many resamples of the users. Only the users within
    reach of a top 10 (:func:`_within_reach`) are ranked; the others' NDCG@10 is 0 under every vector.

    When the ranked users' terms (:class:`_TermCache`'s bytes) would pass ``search_bytes``, the users
    are a random prefix of a permutation of the validation users (``gen``), the shortest one that holds
    as many ranked users as fit. Its ranked users are a uniform random sample of those within reach, and
    those out of reach still count as 0, so every weight vector is compared on the same random share of
    the validation users (the mean's scale is off by a relative error of order 1/fit, the same for
    every weight vector)."""

    def __init__(self, scorer: HybridScorer, names: list[str], val: UserItems, exclude: list[UserItems],
                 cache_bytes: int, search_bytes: int | None = None, gen: torch.Generator | None = None):
        self.scorer, self.names, self.exclude = scorer, names, exclude
        self.score = _TermCache(scorer, names, cache_bytes)
        self.seen: dict[tuple[float, ...], tuple[float, Tensor]] = {}
        users = torch.unique(val.users)
        self.all_users = users.numel()
        reach = _within_reach(scorer, names, val, exclude, users)  # [n]
        fits = None if search_bytes is None else max(1, search_bytes // _TermCache.bytes_per_user(scorer, names))
        if fits is not None and int(reach.sum()) > fits:
            order = torch.randperm(users.numel(), generator=gen)
            cut = int(torch.nonzero(reach[order].cumsum(0) == fits)[0]) + 1  # the prefix with `fits` ranked
            pick = order[:cut].sort().values
            users, reach = users[pick], reach[pick]
        self.users, self.n_users = users, users.numel()
        self.ranked = reach.nonzero().squeeze(1)  # positions of the users that are ranked at all
        keep = torch.isin(val.users, users[self.ranked])
        self.val = UserItems(val.users[keep], val.items[keep], val.n_users, val.n_items)

    def start(self) -> dict[str, float]:
        """Every weight 0; without a base model the first relation's 1 (something must score)."""
        weights = {n: 0.0 for n in self.names}
        if self.scorer.base is None and self.names:
            weights[self.names[0]] = 1.0
        return weights

    def _rank(self, weights: dict[str, float]) -> tuple[float, Tensor]:
        """(NDCG@10 over the validation users, per user ``[n]``) under ``weights``: the users within reach
        are ranked, the others score 0."""
        key = tuple(weights[n] for n in self.names)
        if key not in self.seen:
            self.scorer.weights = dict(weights)
            per = torch.zeros(self.n_users, dtype=torch.float64)
            if self.ranked.numel():
                part: dict[str, Tensor] = {}
                evaluate_ranking(self.score, self.val, self.exclude, per_user=part, mrr=False)
                per[self.ranked] = part["ndcg@10"]
            self.seen[key] = (float(per.sum()) / self.n_users if self.n_users else 0.0, per)
        return self.seen[key]

    def mean(self, weights: dict[str, float]) -> float:
        """NDCG@10 over the validation users under ``weights``."""
        return self._rank(weights)[0]

    def per_user(self, weights: dict[str, float]) -> Tensor:
        """Each validation user's NDCG@10 ``[n]`` under ``weights``."""
        return self._rank(weights)[1]

    def ascent(self, counts: Tensor | None, sweeps: int, trace: list[dict] | None = None) -> dict[str, float]:
        """Coordinate ascent of the ``counts``-weighted mean NDCG@10 (``counts [n]``: how often each
        validation user is drawn; ``None``: the users as they are). ``trace`` gets each step."""
        weights = self.start()
        total = float(counts.sum()) if counts is not None else 0.0

        def value(w: dict[str, float]) -> float:
            if counts is None:
                return self.mean(w)
            return float(counts @ self.per_user(w)) / total if total else 0.0

        best = value(weights)
        if trace is not None:
            trace.append({"weights": dict(weights), "val_ndcg@10": self.mean(weights)})
        for _ in range(sweeps):
            changed = False
            for name in self.names:
                for w in GRID:
                    if w == weights[name]:
                        continue
                    trial = dict(weights, **{name: w})
                    if self.scorer.base is None and not any(trial.values()):
                        continue
                    v = value(trial)
                    if v > best + 1e-6:
                        best, weights, changed = v, trial, True
                        if trace is not None:
                            trace.append({"weights": dict(weights), "val_ndcg@10": self.mean(weights)})
            if not changed:
                break
        return weights

    def resampled(self, users: Tensor | None, replicates: int, sweeps: int, gen: torch.Generator) -> list[dict]:
        """The ascent's weights on ``replicates`` bootstrap resamples of ``users [m]`` (validation user
        positions; ``None``: all of them). No users: nothing to resample, ``[]``."""
        pool = torch.arange(self.n_users) if users is None else users
        chosen = []
        for _ in range(replicates if pool.numel() else 0):
            draw = pool[torch.randint(0, pool.numel(), (pool.numel(),), generator=gen)]
            chosen.append(self.ascent(torch.bincount(draw, minlength=self.n_users).double(), sweeps))
        return chosen


def _within_reach(scorer: HybridScorer, names: list[str], val: UserItems, exclude: list[UserItems],
                  users: Tensor, budget: int = REACH_BATCH_BYTES) -> Tensor:
    """``[n]`` bool: whether ``users [n]`` (ascending) can have a validation item in their top 10 under some
    weights of ``names`` (every weight ≥ 0, at most ``max(GRID)``; the GNN's 1).

    A product ``i`` that scores above the held-out item ``t`` in every part (strictly, by a margin that
    float rounding cannot undo, in the GNN's part, or in every part without a GNN) ranks above ``t``
    under all such weights: the blend is a sum of non-negative multiples of the parts. A user with ten
    such products, none of them excluded, above each of their held-out items has NDCG@10 0 everywhere
    in the search and need not be ranked at all. Exact; without a GNN, 40 % of the mid-size demo shop's
    16,484 validation users are so decided (``fit`` reports the count as ``"ranked_users"``). Users go
    in batches whose ``[B, I]`` parts (and the comparison's buffers) take about ``budget`` bytes."""
    per_user = val.n_items * (4 * (len(names) + 2) + 2)  # the parts, a compared row, two bool masks
    batch_size = max(1, min(1024, budget // max(per_user, 1)))
    reach = torch.zeros(users.numel(), dtype=torch.bool)
    for start in range(0, users.numel(), batch_size):
        batch = users[start:start + batch_size]
        z = scorer._z_terms(batch, names)  # {part: [B, I]}
        strict = ["gnn"] if "gnn" in z else list(z)
        scale = max(float(t.abs().max()) for t in z.values()) if z else 0.0
        n = len(z)
        margin = 2 * (n * n + n) * torch.finfo(torch.float32).eps * max(GRID) * scale
        excluded = torch.zeros(batch.numel(), val.n_items, dtype=torch.bool)
        for ex in exclude:
            excluded[ex.gather(batch)] = True
        rows, items = val.gather(batch)
        for lo in range(0, rows.numel(), batch_size):  # held-out items in chunks: [M, I] at a time
            r, i = rows[lo:lo + batch_size], items[lo:lo + batch_size]
            above = ~excluded[r]  # [M, I]
            for name, t in z.items():
                row, own = t[r], t[r, i][:, None]
                above &= row > own + margin if name in strict else row >= own
            reach[start + r[above.sum(1, dtype=torch.int32) < 10]] = True
    return reach


class _TermCache:
    """``users [B] -> [B, I]``: ``scorer``'s score under its current weights, from z-scored terms kept
    per batch of users (the weight search ranks the same batches again and again). Every relation in
    ``names`` is kept, weighted or not; batches past ``budget`` bytes are scored without keeping. The
    kept terms are added up by :meth:`HybridScorer._weighted_sum` as the served score is, so the
    scores are the same to the last bit."""

    def __init__(self, scorer: HybridScorer, names: list[str], budget: int):
        self.scorer, self.names, self.budget = scorer, names, budget
        self.kept: dict[tuple[int, int, int], dict[str, Tensor]] = {}
        self.used_bytes = 0

    @staticmethod
    def bytes_per_user(scorer: HybridScorer, names: list[str]) -> int:
        """What one user's kept terms take: a float32 row per relation and one for the GNN."""
        return scorer.prior.history.n_items * 4 * (len(names) + 1)

    def __call__(self, users: Tensor) -> Tensor:
        key = (int(users[0]), int(users[-1]), users.numel()) if users.numel() else (0, 0, 0)
        terms = self.kept.get(key)
        if terms is None:
            size = users.numel() * self.bytes_per_user(self.scorer, self.names)
            if self.used_bytes + size > self.budget:
                return self.scorer(users)
            terms = self.kept[key] = self.scorer._z_terms(users, self.names)
            self.used_bytes += size
        return self.scorer._weighted_sum(terms)
