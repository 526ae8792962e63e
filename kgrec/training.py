"""Training: BPR with uniform + same-category hard negatives, AdamW, early stopping on validation
NDCG@10, bf16 autocast on CUDA, deterministic on CPU for a seed, TensorBoard curves."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .evaluate import evaluate_ranking
from .interactions import UserItems


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 200
    lr: float = 0.005
    weight_decay: float = 0.0
    l2: float = 1e-4  # L2 on the batch's output embeddings
    batch_size: int = 2048
    negatives: int = 64
    hard_negative_ratio: float = 0.25
    patience: int = 30  # epochs without a better validation NDCG@10 before stopping
    eval_every: int = 1
    loss: str = "softmax"  # bpr | softmax (sampled softmax over the positive and its negatives)
    temperature: float = 1.0  # softmax temperature
    # neighbour-sampled mini-batches: fan-out per layer (e.g. (10, 10)); None = full-graph message passing
    neighbours: tuple[int, ...] | None = None


class NegativeSampler:
    """Uniform negatives, and with ``hard_ratio`` probability a product of the positive's category."""

    def __init__(self, n_items: int, item_category: Tensor | None, hard_ratio: float, generator: torch.Generator):
        self.n_items, self.hard_ratio, self.gen = n_items, hard_ratio, generator
        self.item_category = item_category
        if item_category is not None and hard_ratio > 0:
            has = item_category >= 0
            order = torch.argsort(item_category[has], stable=True)
            self.cat_items = torch.nonzero(has).flatten()[order]
            counts = torch.bincount(item_category[has], minlength=int(item_category.max()) + 1)
            self.cat_start = counts.cumsum(0) - counts
            self.cat_size = counts

    def __call__(self, pos: Tensor, k: int) -> Tensor:
        """``pos [B]`` → negatives ``[B, k]``."""
        neg = torch.randint(0, self.n_items, (pos.numel(), k), generator=self.gen)
        if self.item_category is None or self.hard_ratio <= 0:
            return neg
        cat = self.item_category[pos]  # [B]
        use = (torch.rand(pos.numel(), k, generator=self.gen) < self.hard_ratio) & (cat >= 0)[:, None]
        c = cat.clamp(min=0)[:, None].expand(-1, k)
        offset = (torch.rand(pos.numel(), k, generator=self.gen) * self.cat_size[c].clamp(min=1)).long()
        hard = self.cat_items[(self.cat_start[c] + offset).clamp(max=self.cat_items.numel() - 1)]
        return torch.where(use, hard, neg)


def bpr_loss(u: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """``u [B, d]``, ``pos [B, d]``, ``neg [B, k, d]`` → scalar mean BPR loss."""
    pos_s = (u * pos).sum(-1, keepdim=True)  # [B, 1]
    neg_s = torch.einsum("bd,bkd->bk", u, neg)  # [B, k]
    return F.softplus(neg_s - pos_s).mean()


def softmax_loss(u: Tensor, pos: Tensor, neg: Tensor, temperature: float = 1.0) -> Tensor:
    """Sampled softmax: ``u [B, d]``, ``pos [B, d]``, ``neg [B, k, d]`` → scalar cross-entropy of the positive."""
    pos_s = (u * pos).sum(-1, keepdim=True)  # [B, 1]
    neg_s = torch.einsum("bd,bkd->bk", u, neg)  # [B, k]
    logits = torch.cat([pos_s, neg_s], 1) / temperature  # [B, 1 + k]
    return F.cross_entropy(logits, torch.zeros(u.shape[0], dtype=torch.long, device=u.device))


LOSSES = {"bpr": lambda u, p, n, t: bpr_loss(u, p, n), "softmax": softmax_loss}


def dist_info() -> tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed group, ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_grads(model: torch.nn.Module) -> None:
    """Sum the gradients over the processes (one flat all-reduce)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _broadcast_float(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


@dataclass
class Batch:
    """One optimiser step's inputs on this process.

    ``model.embed(*inputs)`` gives ``(U, I)``; the step's examples are users ``U[users] [B]``, positive
    products ``I[pos] [B]`` and negatives ``I[neg] [B, k]``. ``share`` is this process's fraction of the
    step's loss (1.0 on one process) and ``size`` the number of examples in the step over all processes.
    """

    inputs: tuple
    users: Tensor
    pos: Tensor
    neg: Tensor
    share: float
    size: int


class FullGraphBatches:
    """Full-graph message passing for every step: shuffled training edges, ``NegativeSampler`` negatives.

    Under ``torch.distributed`` with W processes, every process draws the same batch and negatives (same
    seed) and takes its 1/W slice, with a loss weighted by the slice's share, so the summed gradients
    equal the single-process gradient up to floating-point summation order. The graph is replicated.
    """

    def __init__(self, embed_inputs: tuple, train_users: Tensor, train_items: Tensor, n_items: int,
                 item_category: Tensor | None, cfg: OptimConfig, gen: torch.Generator):
        self.inputs, self.users, self.items, self.cfg, self.gen = embed_inputs, train_users, train_items, cfg, gen
        self.sampler = NegativeSampler(n_items, item_category, cfg.hard_negative_ratio, gen)

    def __iter__(self):
        rank, world = dist_info()
        n = self.users.numel()
        perm = torch.randperm(n, generator=self.gen)
        for start in range(0, n, self.cfg.batch_size):
            b = perm[start:start + self.cfg.batch_size]
            neg = self.sampler(self.items[b], self.cfg.negatives)
            size = b.numel()
            if world > 1:  # this process's slice of the (identical on every process) batch
                b, neg = b[rank::world], neg[rank::world]
            yield Batch(self.inputs, self.users[b], self.items[b], neg, b.numel() / size, size)


def train_embedding_model(model: torch.nn.Module, embed_inputs: tuple, train_users: Tensor, train_items: Tensor,
                          val_targets: UserItems, val_exclude: list[UserItems], n_items: int,
                          item_category: Tensor | None, cfg: OptimConfig, seed: int, device: torch.device,
                          writer=None, tag: str = "model", progress: bool = False, batches=None) -> dict:
    """Train ``model.embed(*embed_inputs) -> (U [n_users, d], I [n_items, d])`` and keep the best epoch.

    Returns ``{"epochs": n, "best_epoch": e, "val": metrics, "curve": [...]}``; the model ends with
    the weights of the best validation NDCG@10.

    ``batches`` (an iterable of :class:`Batch`, walked once per epoch) defaults to
    :class:`FullGraphBatches`; :class:`kgrec.sampling.NeighbourBatches` gives neighbour-sampled
    subgraphs instead. Under ``torch.distributed`` (``torchrun``) each process computes its share of
    every step and the gradients are summed with one all-reduce. Validation always embeds the full
    graph (``embed_inputs``); it runs on rank 0 only and its NDCG@10 is broadcast, so every process
    stops at the same epoch.
    """
    rank, world = dist_info()
    gen = torch.Generator().manual_seed(seed)
    if batches is None:
        batches = FullGraphBatches(embed_inputs, train_users, train_items, n_items, item_category, cfg, gen)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = device.type == "cuda"
    best, best_state, best_epoch, waited, curve = -1.0, None, 0, 0, []
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"training {tag}", unit="epoch", leave=False, disable=None)
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total, seen = 0.0, 0
        for batch in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                U, I = model.embed(*batch.inputs)
                ue = U[batch.users.to(device)].float()
                pe, ne = I[batch.pos.to(device)].float(), I[batch.neg.to(device)].float()
                loss = LOSSES[cfg.loss](ue, pe, ne, cfg.temperature) * batch.share
                loss = loss + cfg.l2 * (ue.pow(2).sum() + pe.pow(2).sum() + ne.pow(2).sum() / cfg.negatives) / batch.size
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:  # the shares sum to the step's loss, so the summed gradients are its gradient
                _sum_grads(model)
            opt.step()
            batch_loss = loss.detach()
            if world > 1:
                dist.all_reduce(batch_loss)
            total += float(batch_loss) * batch.size
            seen += batch.size
        epoch_s = time.perf_counter() - t0
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            continue
        ndcg = 0.0
        if rank == 0:
            ndcg = evaluate_embeddings(model, embed_inputs, val_targets, val_exclude, device).get("ndcg@10", 0.0)
        if world > 1:
            ndcg = _broadcast_float(ndcg, device)
        epoch_loss = total / max(seen, 1)
        curve.append({"epoch": epoch, "loss": epoch_loss, "val_ndcg@10": ndcg, "epoch_seconds": epoch_s})
        if writer is not None and rank == 0:
            writer.add_scalar(f"{tag}/loss", epoch_loss, epoch)
            writer.add_scalar(f"{tag}/val_ndcg@10", ndcg, epoch)
        if bar is not None:
            bar.update(cfg.eval_every)
            bar.set_postfix(loss=f"{epoch_loss:.4f}", val_ndcg10=f"{ndcg:.4f}")
        if ndcg > best:
            best, best_epoch, waited = ndcg, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += cfg.eval_every
            if waited >= cfg.patience:
                break
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"epochs": epoch, "best_epoch": best_epoch, "curve": curve}


@torch.no_grad()
def embeddings(model: torch.nn.Module, embed_inputs: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    """Eval-mode ``(U [n_users, d], I [n_items, d])`` on the CPU in float32."""
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        U, I = model.embed(*embed_inputs)
    return U.float().cpu(), I.float().cpu()


def evaluate_embeddings(model, embed_inputs, targets: UserItems, exclude: list[UserItems], device) -> dict:
    U, I = embeddings(model, embed_inputs, device)
    return evaluate_ranking(lambda users: U[users] @ I.T, targets, exclude)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


