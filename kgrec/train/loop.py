"""Training: sampled softmax over uniform negatives shared by the batch (or BPR), Adam, early stopping on
validation NDCG@10, bf16 where the hardware has it (``--precision``), deterministic on CPU for a seed,
TensorBoard curves."""
from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from kgrec.config import LOSSES, PRECISIONS, OptimConfig
from kgrec.data.interactions import UserItems
from kgrec.runtime import keep_freed_memory, resolve_device  # noqa: F401  (resolve_device: re-exported)
from kgrec.train.evaluate import evaluate_ranking


class NegativeSampler:
    """Uniform negatives, and with ``hard_ratio`` probability a product of the positive's category."""

    def __init__(self, n_items: int, item_category: Tensor | None, hard_ratio: float, generator: torch.Generator):
        self.n_items, self.hard_ratio, self.gen = n_items, hard_ratio, generator
        has = item_category >= 0 if item_category is not None else None
        if has is None or not bool(has.any()):  # no categories (a triples-only export): uniform only
            self.hard_ratio = 0.0
        if self.hard_ratio > 0:
            self.item_category = item_category
            order = torch.argsort(item_category[has], stable=True)
            self.cat_items = torch.nonzero(has).flatten()[order]
            counts = torch.bincount(item_category[has], minlength=int(item_category.max()) + 1)
            self.cat_start = counts.cumsum(0) - counts
            self.cat_size = counts

    def shared(self, k: int) -> Tensor:
        """Negatives for a whole batch ``[k]``: every product when there are at most ``k``, else ``k``
        uniform draws."""
        if k >= self.n_items:
            return torch.arange(self.n_items)
        return torch.randint(0, self.n_items, (k,), generator=self.gen)

    def __call__(self, pos: Tensor, k: int) -> Tensor:
        """``pos [B]`` → negatives ``[B, k]``."""
        neg = torch.randint(0, self.n_items, (pos.numel(), k), generator=self.gen)
        if self.hard_ratio <= 0:
            return neg
        cat = self.item_category[pos]  # [B]
        use = (torch.rand(pos.numel(), k, generator=self.gen) < self.hard_ratio) & (cat >= 0)[:, None]
        c = cat.clamp(min=0)[:, None].expand(-1, k)
        offset = (torch.rand(pos.numel(), k, generator=self.gen) * self.cat_size[c].clamp(min=1)).long()
        hard = self.cat_items[(self.cat_start[c] + offset).clamp(max=self.cat_items.numel() - 1)]
        return torch.where(use, hard, neg)


def ranking_loss(u: Tensor, pos: Tensor, neg: Tensor, pos_idx: Tensor, neg_idx: Tensor, loss: str,
                 temperature: float) -> Tensor:
    """Scalar loss of the positives against the negatives.

    ``u [B, d]``, ``pos [B, d]``; negatives either per example (``neg [B, k, d]``, ``neg_idx [B, k]``) or
    shared by the batch (``neg [K, d]``, ``neg_idx [K]``). A negative that is the example's own positive
    is masked out. ``softmax``: cross-entropy of the positive among ``1 + k`` logits divided by
    ``temperature``; ``bpr``: mean ``softplus(s_neg - s_pos)``.
    """
    pos_s = (u * pos).sum(-1, keepdim=True)  # [B, 1]
    if neg.dim() == 2:  # shared: [B, d] x [d, K]
        neg_s = u @ neg.T  # [B, K]
        hit = neg_idx[None, :] == pos_idx[:, None]
    else:
        neg_s = torch.einsum("bd,bkd->bk", u, neg)  # [B, k]
        hit = neg_idx == pos_idx[:, None]
    if loss == "bpr":
        return (F.softplus(neg_s - pos_s) * ~hit).sum() / (~hit).sum().clamp(min=1)
    logits = torch.cat([pos_s, neg_s.masked_fill(hit, float("-inf"))], 1) / temperature  # [B, 1 + k]
    return F.cross_entropy(logits, torch.zeros(u.shape[0], dtype=torch.long, device=u.device))


MAX_LOGITS = 1 << 25  # logits per loss chunk (64 MB in bf16, 128 in float32): bounds training memory on big batches
LOG2E = 1.0 / math.log(2.0)
SHIFT_FREE = 40.0  # |logit| bound below which the softmax's exponentials need no max-subtraction


def _hits(pos_idx: Tensor, neg_idx: Tensor) -> tuple[Tensor, Tensor]:
    """Where a shared negative is the example's own positive: rows ``[h]`` into ``pos_idx [b]`` and
    columns ``[h]`` into ``neg_idx [K]`` (a product drawn twice is hit twice). Sparse: O((b + K) log K)."""
    order = torch.argsort(neg_idx)
    ordered = neg_idx[order]
    lo = torch.searchsorted(ordered, pos_idx)
    count = torch.searchsorted(ordered, pos_idx, right=True) - lo
    rows = torch.repeat_interleave(torch.arange(pos_idx.numel(), device=pos_idx.device), count)
    first = torch.repeat_interleave(lo, count)
    step = torch.arange(rows.numel(), device=rows.device) - torch.repeat_interleave(count.cumsum(0) - count, count)
    return rows, order[first + step]


class _Workspace:
    """``[b, K]`` buffers reused by the chunks of one batch (the last, shorter chunk takes a slice):
    allocating them per chunk costs page faults comparable to the arithmetic on CPU."""

    def __init__(self) -> None:
        self._buffers: dict[torch.dtype, Tensor] = {}

    def get(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        buf = self._buffers.get(dtype)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.device != device:
            buf = self._buffers[dtype] = torch.empty(rows, cols, dtype=dtype, device=device)
        return buf[:rows]


def shared_softmax_grads(u: Tensor, p: Tensor, n: Tensor, pos_idx: Tensor, neg_idx: Tensor, temperature: float,
                         weight: float, low_precision: bool = False, workspace: _Workspace | None = None,
                         n_mat: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The sampled-softmax loss over negatives shared by the batch and its gradients, without autograd.

    ``u [b, d]`` users, ``p [b, d]`` their positives, ``n [K, d]`` the shared negatives (``pos_idx [b]``
    and ``neg_idx [K]`` their product ids; a negative that is the example's own positive is left out).
    The loss is ``weight · Σ_r (log(e^{s_r0} + Σ_j e^{s_rj}) − s_r0)`` with ``s_r0 = <u_r, p_r>/τ`` and
    ``s_rj = <u_r, n_j>/τ``. Returns ``(loss, ∂/∂u [b, d], ∂/∂p [b, d], ∂/∂n [K, d])``.

    Only one ``[b, K]`` buffer is written, and it is read three times: the logits (in base 2: ``u`` is
    scaled by ``log2 e``) go through ``exp2`` in place, and both products with the exponentials also
    give the row sums (``n_mat = [n, 1]``, the ones column) and take the softmax's per-row
    normalisation on their ``[b, d]`` side. The exponentials need no max-subtraction pass while every
    ``|s_rj| ≤ ‖u_r‖‖n_j‖/τ`` stays within ``SHIFT_FREE`` (``e^±40`` is far inside float32's and bf16's
    range; the model's vectors, a unit vector and a bias column, are well within it at the default
    temperatures 0.15 and 0.4); past it, each row is shifted by its largest logit.
    ``low_precision``: the buffer and both products in bf16 (float32 accumulation), as autocast would
    run them, the per-row sums and the rest in float32. ``workspace`` keeps the buffer across the
    chunks of a batch; ``n_mat [K, d + 1]`` (from :func:`negatives_matrix`) is built once per batch.
    """
    workspace = workspace or _Workspace()
    dtype = torch.bfloat16 if low_precision else torch.float32
    if n_mat is None:
        n_mat = negatives_matrix(n, dtype)
    inv_t = 1.0 / temperature
    u_s = u * inv_t
    pos_s = (u_s * p).sum(1)  # [b]
    b, k, d = u.shape[0], n.shape[0], u.shape[1]
    s = workspace.get(b, k, dtype, u.device)  # [b, K]
    torch.mm((u_s * LOG2E).to(dtype), n_mat[:, :d].T, out=s)  # the logits, in base 2
    rows, cols = _hits(pos_idx, neg_idx)
    s[rows, cols] = float("-inf")
    bound = float(u_s.norm(dim=1).max() * n.norm(dim=1).max()) if k else 0.0
    if bound <= SHIFT_FREE:
        m = torch.zeros_like(pos_s)
    else:  # large logits: subtract each row's largest (held at the buffer's precision, so it is exact)
        m2 = torch.maximum(s.amax(1).float(), pos_s * LOG2E).to(dtype)  # k > 0 here: the bound is 0 without negatives
        s.sub_(m2[:, None])
        m = m2.float() / LOG2E
    s.exp2_()  # e^{s_rj - m_r}
    e_pos = (pos_s - m).exp()
    en = (s @ n_mat).float()  # [b, d + 1]: Σ_j e^{s_rj - m_r} [n_j, 1]
    z = en[:, d] + e_pos
    loss = weight * (m + z.log() - pos_s).sum()
    scale = weight / z  # [b]: weight · softmax = scale_r · e^{s_rj - m_r}, the gradient w.r.t. the logits
    g_pos = weight * (e_pos / z - 1.0)  # [b]
    grad_u = (scale[:, None] * en[:, :d] + g_pos[:, None] * p) * inv_t
    grad_n = (s.T @ (scale[:, None] * u_s).to(dtype)).float()
    grad_p = g_pos[:, None] * u_s
    return loss, grad_u, grad_p, grad_n


def negatives_matrix(n: Tensor, dtype: torch.dtype) -> Tensor:
    """``n [K, d]`` → ``[n, 1] [K, d + 1]`` in ``dtype``: the right side of both products in
    :func:`shared_softmax_grads` (the ones column sums the rows)."""
    return torch.cat([n, n.new_ones(n.shape[0], 1)], 1).to(dtype)


def loss_backward(U: Tensor, I: Tensor, users: Tensor, pos: Tensor, neg: Tensor, loss: str, temperature: float,
                  share: float, max_logits: int = MAX_LOGITS, amp: bool = False) -> Tensor:
    """``ranking_loss`` of a batch times ``share``, back-propagated into ``U [n_users, d]`` and
    ``I [n_items, d]`` (and through them the model). Returns the detached loss.

    The loss is computed and differentiated chunk by chunk of examples (at most ``max_logits`` logits
    each) against detached copies of ``U`` and ``I``, whose accumulated gradients then go through the
    model in one backward pass ("gradient caching"): the gradients are the unchunked ones (softmax; for
    BPR up to the per-chunk normalisation of masked pairs), while peak memory holds one chunk's logits
    instead of the batch's. The softmax over shared negatives (the default) takes its gradients in
    closed form (:func:`shared_softmax_grads`); BPR and per-example negatives go through autograd.
    ``amp``: the ``[b, K]``-sized products in bf16, the rest in float32."""
    k = neg.shape[-1] if neg.dim() == 2 else neg.numel()
    b = users.numel()
    chunk = max(1, max_logits // k)
    u_d, i_d = U.detach(), I.detach()
    if loss == "softmax" and neg.dim() == 1:
        grad_u, grad_i = torch.zeros_like(u_d, dtype=torch.float32), torch.zeros_like(i_d, dtype=torch.float32)
        n_vec = i_d[neg].float()
        n_mat = negatives_matrix(n_vec, torch.bfloat16 if amp else torch.float32)
        grad_n = torch.zeros_like(n_vec)
        total = torch.zeros((), device=U.device)
        workspace = _Workspace()
        for start in range(0, b, chunk):
            sl = slice(start, start + chunk)
            value, g_u, g_p, g_n = shared_softmax_grads(u_d[users[sl]].float(), i_d[pos[sl]].float(), n_vec, pos[sl],
                                                        neg, temperature, share / b, low_precision=amp,
                                                        workspace=workspace, n_mat=n_mat)
            grad_u.index_add_(0, users[sl], g_u)
            grad_i.index_add_(0, pos[sl], g_p)
            grad_n += g_n
            total += value
        grad_i.index_add_(0, neg, grad_n)
        del workspace, n_vec, n_mat, grad_n  # the [b, K] buffers are not needed by the model's backward
        grads = [grad_u.to(U.dtype), grad_i.to(I.dtype)]
        del grad_u, grad_i
        _backward_once(U, I, grads)
        return total

    def forward(u: Tensor, i: Tensor, sl: slice) -> Tensor:
        n_neg = neg if neg.dim() == 1 else neg[sl]
        with torch.autocast(U.device.type, dtype=torch.bfloat16, enabled=amp):
            return ranking_loss(u[users[sl]].float(), i[pos[sl]].float(), i[n_neg].float(), pos[sl], n_neg, loss,
                                temperature)

    if b * k <= max_logits:
        value = forward(U, I, slice(None)) * share
        value.backward()
        return value.detach()
    u_d, i_d = u_d.requires_grad_(), i_d.requires_grad_()
    total = torch.zeros((), device=U.device)
    for start in range(0, b, chunk):
        sl = slice(start, start + chunk)
        part = forward(u_d, i_d, sl) * (users[sl].numel() / b) * share
        part.backward()
        total += part.detach()
    grads = [u_d.grad, i_d.grad]
    u_d.grad = i_d.grad = None
    _backward_once(U, I, grads)
    return total


class _HandOver(torch.autograd.Function):
    """A zero scalar whose backward hands ``grads`` (a list, emptied then) to its inputs ``U`` and ``I``."""

    @staticmethod
    def forward(ctx, grads: list, U: Tensor, I: Tensor) -> Tensor:
        ctx.grads = grads
        return U.new_zeros(())

    @staticmethod
    def backward(ctx, _: Tensor):
        grad_u, grad_i = ctx.grads
        ctx.grads.clear()
        return None, grad_u, grad_i


def _backward_once(U: Tensor, I: Tensor, grads: list[Tensor]) -> None:
    """``torch.autograd.backward([U, I], grads)``, except that the gradients are not held for the whole
    backward pass: ``torch.autograd.backward`` keeps references to its gradient arguments until it
    returns, so ``∂L/∂U`` (``[n_users, d]``, 0.1 GiB at a million interactions) would stay through the
    model's backward, after the first node has used it. ``grads`` is emptied."""
    _HandOver.apply(grads, U, I).backward()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (x86 AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``); ``False`` where that cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training on ``device`` runs in bf16 (``OptimConfig.precision``): ``auto`` does on CUDA
    and on a CPU with native bf16 (:func:`cpu_has_native_bf16`), where the loss's large products run
    1.5–2× faster at the same validation NDCG@10 (``benchmarks/training_speed.py --precisions``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


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


def broadcast_float(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every process, so that all of them take the same decision (only under an
    initialised process group)."""
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


@dataclass
class Batch:
    """One optimiser step's inputs on this process.

    ``model.embed(*inputs)`` gives ``(U, I)``; the step's examples are users ``U[users] [B]``, positive
    products ``I[pos] [B]`` and negatives ``I[neg]``: ``[B, k]`` per example, or ``[K]`` shared by the batch.
    ``share`` is this process's fraction of the step's loss (1.0 on one process) and ``size`` the number of
    examples in the step over all processes.
    """

    inputs: tuple
    users: Tensor
    pos: Tensor
    neg: Tensor
    share: float
    size: int


def scaled_to(cfg: OptimConfig, n_train: int) -> OptimConfig:
    """``cfg`` with the batch size and learning rate an epoch over ``n_train`` pairs uses: at most
    ``cfg.max_steps`` steps, so the batch grows to ``ceil(n_train / max_steps)`` when that is larger than
    ``cfg.batch_size``, and the learning rate by ``sqrt(new batch / cfg.batch_size)`` (the square-root rule
    for Adam). Unchanged when ``max_steps`` is 0 or the set is small enough."""
    if cfg.max_steps < 0:
        raise ValueError(f"max_steps must be 0 (no bound) or a number of steps, not {cfg.max_steps}")
    if cfg.max_steps == 0 or n_train <= cfg.batch_size * cfg.max_steps:
        return cfg
    batch = -(-n_train // cfg.max_steps)
    return replace(cfg, batch_size=batch, lr=cfg.lr * math.sqrt(batch / cfg.batch_size))


class FullGraphBatches:
    """Full-graph message passing for every step: shuffled training edges, ``NegativeSampler`` negatives.

    Under ``torch.distributed`` with W processes, every process draws the same batch and negatives (same
    seed) and takes its 1/W slice, with a loss weighted by the slice's share, so the summed gradients
    equal the single-process gradient up to floating-point summation order. The graph is replicated.
    """

    def __init__(
        self,
        embed_inputs: tuple,
        train_users: Tensor,
        train_items: Tensor,
        n_items: int,
        item_category: Tensor | None,
        cfg: OptimConfig,
        gen: torch.Generator,
    ):
        self.inputs, self.users, self.items, self.cfg, self.gen = embed_inputs, train_users, train_items, cfg, gen
        self.sampler = NegativeSampler(n_items, item_category, cfg.hard_negative_ratio, gen)

    def __iter__(self):
        rank, world = dist_info()
        n = self.users.numel()
        perm = torch.randperm(n, generator=self.gen)
        for start in range(0, n, self.cfg.batch_size):
            b = perm[start : start + self.cfg.batch_size]
            if self.cfg.shared_negatives:
                neg = self.sampler.shared(self.cfg.negatives)
            else:
                neg = self.sampler(self.items[b], self.cfg.negatives)
            size = b.numel()
            if world > 1:  # this process's slice of the (identical on every process) batch
                b = b[rank::world]
                if not self.cfg.shared_negatives:
                    neg = neg[rank::world]
            yield Batch(self.inputs, self.users[b], self.items[b], neg, b.numel() / size, size)


class EmbeddingTrainer:
    """Trains ``model.embed(*embed_inputs) -> (U [n_users, d], I [n_items, d])`` epoch by epoch and keeps
    the weights of the best validation NDCG@10, so that training can pause and resume between calls of
    :meth:`run` (a temperature search advances its candidates side by side and drops the worse ones).

    ``batches`` (an iterable of :class:`Batch`, walked once per epoch) defaults to
    :class:`FullGraphBatches`; :class:`kgrec.train.sampling.NeighbourBatches` gives neighbour-sampled
    subgraphs instead. Under ``torch.distributed`` (``torchrun``) each process computes its share of
    every step and the gradients are summed with one all-reduce. Validation always embeds the full
    graph (``embed_inputs``); it runs on rank 0 only and its NDCG@10 is broadcast, so every process
    stops at the same epoch. Without validation targets (a refit on every interaction) it trains all
    ``cfg.epochs`` epochs and keeps the last.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        embed_inputs: tuple,
        train_users: Tensor,
        train_items: Tensor,
        val_targets: UserItems,
        val_exclude: list[UserItems],
        n_items: int,
        item_category: Tensor | None,
        cfg: OptimConfig,
        seed: int,
        device: torch.device,
        writer=None,
        tag: str = "model",
        progress: bool = False,
        batches=None,
    ):
        if cfg.loss not in LOSSES:
            raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {', '.join(LOSSES)}")
        if len(cfg.temperature) != 1:
            raise ValueError(f"one training run takes one temperature, not {cfg.temperature}")
        self.rank, self.world = dist_info()
        keep_freed_memory()  # a step's large buffers, reused instead of page-faulted anew
        self.model, self.inputs, self.cfg, self.device = model, embed_inputs, cfg, device
        self.val_targets, self.val_exclude = val_targets, val_exclude
        self.writer, self.tag = writer, tag
        if batches is None:
            gen = torch.Generator().manual_seed(seed)
            batches = FullGraphBatches(embed_inputs, train_users, train_items, n_items, item_category, cfg, gen)
        self.batches = batches
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp = uses_bf16(cfg.precision, device)
        self.temperature = cfg.temperature[0]
        self.validate = len(val_targets) > 0
        self.best, self.best_state, self.best_epoch, self.waited = -1.0, None, 0, 0
        self.mark = -1.0  # the last validation NDCG@10 that reset the patience (cfg.min_improvement)
        self.curve: list[dict] = []
        self.epoch = 0
        self.stop_reason: str | None = None  # why training stopped early: "patience" or "decline"
        self.best_users: Tensor | None = None  # [n_val] each validation user's NDCG@10 at the best epoch
        self.declined = 0  # evaluations in a row significantly below the best (cfg.decline_z)
        # a decline counts only once validation has risen significantly above its first evaluation: until
        # then the model has not yet learnt (LightGCN on magazine dips by 14 % after its first evaluation,
        # a near-popularity ranking, and rises far above it 100 epochs later)
        self.first_users: Tensor | None = None  # [n_val]
        self.risen = False
        self.seconds = 0.0
        self.bar = None
        if progress and self.rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.epochs, desc=f"training {tag}", unit="epoch", leave=False, disable=None)

    @property
    def stopped(self) -> bool:
        """Whether early stopping ended training (:attr:`stop_reason` says why)."""
        return self.stop_reason is not None

    @property
    def finished(self) -> bool:
        """Whether training is over: every epoch done, or stopped early."""
        return self.stopped or self.epoch >= self.cfg.epochs

    def run(self, until: int | None = None) -> EmbeddingTrainer:
        """Train up to epoch ``until`` (default: the end), unless training finishes first."""
        last = self.cfg.epochs if until is None else min(until, self.cfg.epochs)
        t0 = time.perf_counter()
        while not self.stopped and self.epoch < last:
            self._epoch()
        self.seconds += time.perf_counter() - t0
        return self

    def _epoch(self) -> None:
        cfg, model, device = self.cfg, self.model, self.device
        self.epoch += 1
        epoch = self.epoch
        model.train()
        t0 = time.perf_counter()
        total, seen = 0.0, 0
        for batch in self.batches:
            self.opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
                U, I = model.embed(*batch.inputs)
            users, pos, neg = batch.users.to(device), batch.pos.to(device), batch.neg.to(device)
            loss = loss_backward(U, I, users, pos, neg, cfg.loss, self.temperature, batch.share, amp=self.amp)
            del U, I  # not held through the optimiser step and the next step's forward
            if cfg.l2 > 0:
                reg = cfg.l2 * model.regulariser(users, torch.cat([pos, neg.flatten()])) / batch.size
                reg.backward()
                loss = loss + reg.detach()
            if self.world > 1:  # the shares sum to the step's loss, so the summed gradients are its gradient
                _sum_grads(model)
            self.opt.step()
            batch_loss = loss.detach()
            if self.world > 1:
                dist.all_reduce(batch_loss)
            total += float(batch_loss) * batch.size
            seen += batch.size
        epoch_s = time.perf_counter() - t0
        if not self.validate:
            self.curve.append({"epoch": epoch, "loss": total / max(seen, 1), "epoch_seconds": epoch_s})
            if self.bar is not None:
                self.bar.update(1)
            return
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            return
        ndcg, z = 0.0, 0.0
        if self.rank == 0:
            per_user: dict[str, Tensor] = {}
            ndcg = evaluate_embeddings(model, self.inputs, self.val_targets, self.val_exclude, device,
                                       per_user).get("ndcg@10", 0.0)
            users_ndcg = per_user.get("ndcg@10")
            z = paired_z(users_ndcg, self.best_users) if self.best_users is not None else 0.0
        if self.world > 1:
            ndcg, z = broadcast_float(ndcg, device), broadcast_float(z, device)
        epoch_loss = total / max(seen, 1)
        self.curve.append({"epoch": epoch, "loss": epoch_loss, "val_ndcg@10": ndcg, "val_z": z,
                           "epoch_seconds": epoch_s})
        if self.writer is not None and self.rank == 0:
            self.writer.add_scalar(f"{self.tag}/loss", epoch_loss, epoch)
            self.writer.add_scalar(f"{self.tag}/val_ndcg@10", ndcg, epoch)
        if self.bar is not None:
            self.bar.update(cfg.eval_every)
            self.bar.set_postfix(loss=f"{epoch_loss:.4f}", val_ndcg10=f"{ndcg:.4f}")
        if ndcg > self.best:
            self.best, self.best_epoch = ndcg, epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            if self.rank == 0 and users_ndcg is not None:
                self.best_users = users_ndcg
                self.first_users = users_ndcg if self.first_users is None else self.first_users
                self.risen = self.risen or paired_z(users_ndcg, self.first_users) > cfg.decline_z
            if self.world > 1:
                self.risen = broadcast_float(float(self.risen), device) > 0
        declining = cfg.decline_z > 0 and self.risen and z < -cfg.decline_z
        self.declined = self.declined + 1 if declining else 0
        if self.declined >= cfg.decline_evals:
            self.stop_reason = "decline"
        if ndcg > self.mark * (1 + cfg.min_improvement) or self.mark < 0:
            self.mark, self.waited = ndcg, 0  # a gain that resets the patience
        else:
            self.waited += cfg.eval_every
            if self.waited >= cfg.patience and not self.stopped:
                self.stop_reason = "patience"

    @property
    def converged_epoch(self) -> int:
        """The first validated epoch within ``cfg.min_improvement`` (relative) of the best validation
        NDCG@10: how long training needed, on a plateau where the best epoch itself is noise."""
        floor = self.best / (1 + self.cfg.min_improvement)
        return next((c["epoch"] for c in self.curve if c.get("val_ndcg@10", -1.0) >= floor), self.best_epoch)

    def finish(self) -> dict:
        """Ends training: the model takes the weights of its best validation NDCG@10 (of its last epoch
        without validation). Returns ``{"epochs", "best_epoch", "converged_epoch", "best_val", "curve",
        "seconds", "stopped"}`` (``stopped``: ``"patience"``, ``"decline"`` or None)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.best_state = None
        return {
            "epochs": self.epoch,
            "best_epoch": self.best_epoch if self.validate else self.epoch,
            "converged_epoch": self.converged_epoch if self.validate else self.epoch,
            "best_val": self.best if self.validate else None,
            "stopped": self.stop_reason,
            "curve": self.curve,
            "seconds": self.seconds,
        }


def train_embedding_model(*args, **kwargs) -> dict:
    """Train a model to the end (early stopping on validation NDCG@10) and keep the best epoch: one
    :class:`EmbeddingTrainer` (same arguments) run through. Returns :meth:`EmbeddingTrainer.finish`'s
    dict."""
    return EmbeddingTrainer(*args, **kwargs).run().finish()


@torch.no_grad()
def embeddings(model: torch.nn.Module, embed_inputs: tuple, device: torch.device,
               on_device: bool = False) -> tuple[Tensor, Tensor]:
    """Eval-mode ``(U [n_users, d], I [n_items, d])`` in float32, on the CPU (or left on ``device``)."""
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        U, I = model.embed(*embed_inputs)
    if on_device:
        return U.float(), I.float()
    return U.float().cpu(), I.float().cpu()


def evaluate_embeddings(model, embed_inputs, targets: UserItems, exclude: list[UserItems], device,
                        per_user: dict[str, Tensor] | None = None) -> dict:
    """Full-ranking metrics but the MRR (what validation reads) of the model's embeddings, ranked on
    ``device`` (every product for every target user: on a GPU this is what makes validation at millions
    of users affordable). ``per_user``: as :func:`evaluate_ranking`'s."""
    U, I = embeddings(model, embed_inputs, device, on_device=True)
    return evaluate_ranking(lambda users: U[users.to(U.device)] @ I.T, targets, exclude, mrr=False,
                            per_user=per_user)


def paired_z(now: Tensor, then: Tensor) -> float:
    """How many standard errors the mean of ``now - then`` lies from 0 (``[n]`` per-user metrics of two
    models over the same users): the paired t statistic, negative when ``now`` is worse. Users on whom the
    two agree count, with a difference of 0; 0.0 when the two agree on every user."""
    d = now.double() - then.double()  # [n]
    if d.numel() < 2:
        return 0.0
    se = float(d.std()) / math.sqrt(d.numel())
    return float(d.mean()) / se if se > 0 else 0.0


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
