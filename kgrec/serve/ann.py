"""Approximate top-K over the product vectors of a large catalog, then an exact rerank.

Embedding runs score ``u · i`` (the product bias is folded into the vectors), so a user's top-K is a
maximum-inner-product search. Above :data:`kgrec.config.ANN_MIN_PRODUCTS` products a run folder
holds ``products.faiss``: a faiss HNSW graph over the product vectors with the inner product as its
metric, built when the run is saved (faiss was measured against usearch on the same vectors, see
``benchmarks/ann.py``: it built 2.3× faster and answered 2× faster at equal recall). The index only
proposes candidates: :func:`top_k` asks it for ``k`` plus the user's seen products plus a margin,
adds the best products of the served blend's sparse path relations (shared shoppers, category,
brand), drops the seen ones, and ranks what is left with the served model's exact score (see
:meth:`kgrec.models.paths.HybridScorer.score_at`). For a path-blend run the index holds the linear
part of the served score (product vectors, and text embeddings when the text path counts), so the
query is the user's side of that part. Below the threshold, or with
``exact=True``, every product is scored.

The index file is faiss's own binary format (no pickle); a file that does not match the run's product
vectors (count or dimension) is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from kgrec.config import ANN_MARGIN, ANN_MIN_PRODUCTS
from kgrec.errors import RunError

INDEX_FILE = "products.faiss"
M = 32  # HNSW links per node
EF_CONSTRUCTION = 80
EF_SEARCH = 128  # candidates kept while searching; recall vs latency, see benchmarks/ann.py


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # a core dependency; only a broken install gets here
        raise RunError("approximate top-K needs faiss: pip install faiss-cpu (or serve with --exact)") from exc
    return faiss


class ProductIndex:
    """An HNSW inner-product index over product vectors ``[I, d]``; ``search`` returns candidate rows."""

    def __init__(self, index, n_items: int, dim: int):
        self.index, self.n_items, self.dim = index, n_items, dim

    @classmethod
    def build(cls, items: Tensor, threads: int | None = None) -> ProductIndex:
        """Index ``items [I, d]`` (float32)."""
        faiss = _faiss()
        if threads:
            faiss.omp_set_num_threads(threads)
        x = np.ascontiguousarray(items.detach().float().cpu().numpy())
        index = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.add(x)
        index.hnsw.efSearch = EF_SEARCH
        return cls(index, x.shape[0], x.shape[1])

    def search(self, queries: Tensor, n: int) -> Tensor:
        """``queries [B, d]`` → candidate rows ``[B, n']`` (``n' = min(n, I)``; -1 where the graph found fewer)."""
        n = min(n, self.n_items)
        self.index.hnsw.efSearch = max(EF_SEARCH, n)
        _, ids = self.index.search(np.ascontiguousarray(queries.detach().float().cpu().numpy()), n)
        return torch.from_numpy(ids.astype(np.int64))

    def save(self, path: Path) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, items: Tensor) -> ProductIndex:
        """Read ``path`` and check it indexes exactly ``items [I, d]``."""
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise RunError(f"{path} is damaged ({str(exc).splitlines()[0][:200]}); delete it and run "
                           f"'kgrec index {path.parent}'") from None
        if index.ntotal != items.shape[0] or index.d != items.shape[1]:
            raise RunError(f"{path} indexes {index.ntotal} vectors of {index.d} dimensions, but the run has "
                           f"{items.shape[0]} of {items.shape[1]}; delete it and run 'kgrec index {path.parent}'")
        return cls(index, index.ntotal, index.d)


def wants_index(n_items: int) -> bool:
    """Whether a catalog of ``n_items`` products is served through an index (measured threshold)."""
    return n_items >= ANN_MIN_PRODUCTS


def top_k(retrieval, index: ProductIndex, score_at, seen: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """One user's top-``k``. ``retrieval(n) -> (query [d], extra [M])``: the user's query for the index
    and up to ``n`` more candidates per sparse path relation; ``score_at(items [C]) -> [C]`` the exact
    served score; ``seen [S]`` products never to return. Returns (scores ``[k']``, products ``[k']``),
    best first; ``k' < k`` only when fewer unseen products exist."""
    margin = max(ANN_MARGIN, k)
    query, extra = retrieval(k + margin)
    cand = index.search(query[None], k + seen.numel() + margin)[0]
    cand = torch.unique(torch.cat([cand[cand >= 0], extra]))
    if seen.numel():
        cand = cand[~torch.isin(cand, seen)]
    if cand.numel() == 0:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    scores = score_at(cand)
    top = scores.topk(min(k, cand.numel()))
    return top.values, cand[top.indices]
