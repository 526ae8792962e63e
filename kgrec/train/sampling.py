"""Neighbour-sampled mini-batches for the GNNs, with PyG's ``LinkNeighborLoader``.

Full-graph message passing is the default and stays exact for graphs that fit. For larger graphs,
``OptimConfig.neighbours = (f1, f2, ...)`` trains on sampled subgraphs instead: each step takes a batch
of training user→product edges, draws ``negatives`` uniform negative products per edge (PyG's
"triplet" negative sampling), samples up to ``f_l`` neighbours per node and edge type at hop ``l``
around all of them, and runs the same model on that subgraph. Validation, evaluation and serving
still embed the whole graph (no gradients, so it needs far less memory than training).

PyG's neighbour sampler needs ``pyg-lib`` or ``torch-sparse``, neither of which is installed by default
(see the README's "Mini-batch training" section); :func:`require_neighbour_sampler` says so clearly.
"""
from __future__ import annotations

import torch
from torch import Tensor

from kgrec.train.loop import Batch, dist_info

INSTALL_HINT = ("neighbour-sampled mini-batches (--neighbours) need PyG's neighbour sampler, which needs "
                "'pyg-lib' or 'torch-sparse'. Neither is importable here. Install one, e.g. "
                "`pip install --no-build-isolation torch-scatter torch-sparse` (compiles from source: 34 "
                "minutes on 2 CPU cores in this project's measurement), or a pyg-lib wheel matching your torch from "
                "https://data.pyg.org/whl/ ; or train full-graph (leave out --neighbours).")


def neighbour_sampler_available() -> bool:
    """True when PyG can sample neighbours (``pyg-lib`` or ``torch-sparse`` is importable)."""
    import torch_geometric.typing as pyg_typing

    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


def require_neighbour_sampler() -> None:
    """Raise a ``RuntimeError`` naming what to install when neighbour sampling is unavailable."""
    if not neighbour_sampler_available():
        raise RuntimeError(INSTALL_HINT)


def parse_fanout(text: str) -> tuple[int, ...]:
    """``"10,5"`` → ``(10, 5)``; every fan-out must be a positive integer (or -1 for all neighbours)."""
    try:
        fanout = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--neighbours wants comma-separated integers per layer, e.g. 10,10; got {text!r}") from None
    if not fanout or any(f == 0 or f < -1 for f in fanout):
        raise ValueError(f"--neighbours: each fan-out must be a positive integer or -1 (all); got {text!r}")
    return fanout


class NeighbourBatches:
    """Iterable of :class:`kgrec.train.loop.Batch` over neighbour-sampled subgraphs, one pass per epoch.

    ``data`` is the full training graph (CPU ``HeteroData``), ``target`` the user→product edge type,
    ``train_users``/``train_items`` ``[E]`` the training edges, one example each. ``fanout`` must have one
    entry per message-passing layer. Under ``torch.distributed`` with W processes, each epoch's shuffled
    edges are split into W equal shards (the last ``E mod W`` of the shuffle are left to the next epoch's
    draw) and each process samples its own shard, so every process takes the same number of steps; each
    loss is weighted 1/W, so the summed gradients are the mean over the W sub-batches.
    """

    def __init__(self, data, target: tuple[str, str, str], train_users: Tensor, train_items: Tensor,
                 fanout: tuple[int, ...], batch_size: int, negatives: int, seed: int, device: torch.device):
        require_neighbour_sampler()
        from torch_geometric.sampler import NeighborSampler

        self.data, self.target, self.fanout = data, target, list(fanout)
        # built once: it converts the graph to compressed (CSC) form, which costs as much as an epoch
        # of sampling on a large graph
        self.sampler = NeighborSampler(data, num_neighbors=self.fanout)
        self.edges = torch.stack([train_users, train_items])  # [2, E]
        self.batch_size, self.negatives, self.device = batch_size, negatives, device
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        from torch_geometric.loader import LinkNeighborLoader
        from torch_geometric.sampler import NegativeSampling

        rank, world = dist_info()
        n = self.edges.shape[1]
        perm = torch.randperm(n, generator=self.gen)
        if world > 1:
            perm = perm[: n - n % world][rank::world]
        # the loader's own shuffling and negative draws use torch's global generator; seed it from ours
        # so an epoch is reproducible for a seed
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.gen)))
        loader = LinkNeighborLoader(
            self.data, num_neighbors=self.fanout, edge_label_index=(self.target, self.edges[:, perm]),
            neg_sampling=NegativeSampling("triplet", amount=self.negatives), batch_size=self.batch_size,
            shuffle=False, neighbor_sampler=self.sampler)
        src, dst = self.target[0], self.target[2]
        for sub in loader:
            sub = sub.to(self.device)
            neg = sub[dst].dst_neg_index
            if neg.dim() == 1:  # PyG squeezes a single negative per edge
                neg = neg[:, None]
            users = sub[src].src_index
            yield Batch((sub.x_dict, sub.edge_index_dict, sub.n_id_dict), users, sub[dst].dst_pos_index, neg,
                        1.0 / world, users.numel() * world)
