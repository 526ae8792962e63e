"""A compressed (CSR) user → items index, for histories, exclusion masks and item-kNN."""
from __future__ import annotations

import torch
from torch import Tensor


class UserItems:
    """Set of items per user. ``users [E]``, ``items [E]`` index tensors (duplicates are merged)."""

    def __init__(self, users: Tensor, items: Tensor, n_users: int, n_items: int):
        key = torch.unique(users.long() * n_items + items.long())
        self.users, self.items = key // n_items, key % n_items  # sorted by user
        self.n_users, self.n_items = n_users, n_items
        counts = torch.bincount(self.users, minlength=n_users)
        self.crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])

    def align(self, users: Tensor, items: Tensor, values: Tensor) -> Tensor:
        """``values [E]`` given per ``(users, items)`` pair → ``[len(self)]`` in this index's pair order (the
        largest value of a merged duplicate; NaN where a pair has none)."""
        key = users.long() * self.n_items + items.long()
        pos = torch.searchsorted(self.users * self.n_items + self.items, key)
        v = values.double()
        out = torch.full((len(self),), -float("inf"), dtype=torch.float64)
        out.scatter_reduce_(0, pos, torch.where(torch.isnan(v), -float("inf"), v), reduce="amax")
        return torch.where(torch.isinf(out) & (out < 0), float("nan"), out)

    def __len__(self) -> int:
        return self.items.numel()

    def gather(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """For ``users [B]`` → (row ``[M]`` in 0..B-1, item ``[M]``) of all their items."""
        starts, ends = self.crow[users], self.crow[users + 1]
        lens = ends - starts
        rows = torch.repeat_interleave(torch.arange(users.numel()), lens)
        first = torch.repeat_interleave(starts - (lens.cumsum(0) - lens), lens)
        pos = torch.arange(int(lens.sum())) + first
        return rows, self.items[pos]

    def dense(self, users: Tensor) -> Tensor:
        """``[B, I]`` 0/1 float matrix of the users' items."""
        out = torch.zeros(users.numel(), self.n_items)
        rows, items = self.gather(users)
        out[rows, items] = 1.0
        return out

    def times(self, users: Tensor, w: Tensor) -> Tensor:
        """``X[users] W``: the users' 0/1 history rows ``[B, I]`` times ``w [I, D]`` → ``[B, D]`` through a CSR
        matrix of the rows (a history row has a handful of items: at 5,447 products and 1,024 users, 0.10 s
        against 0.19 s for the dense product on 2 cores; equal to it up to float rounding)."""
        rows, items = self.gather(users)
        crow = torch.zeros(users.numel() + 1, dtype=torch.long)
        crow[1:] = torch.bincount(rows, minlength=users.numel()).cumsum(0)
        x = torch.sparse_csr_tensor(crow, items, torch.ones(items.numel(), dtype=w.dtype),
                                    (users.numel(), self.n_items), check_invariants=False)
        return x @ w

    def sparse(self) -> Tensor:
        """``[U, I]`` sparse COO 0/1 float matrix of every user's items."""
        return torch.sparse_coo_tensor(torch.stack([self.users, self.items]), torch.ones(self.items.numel()),
                                       (self.n_users, self.n_items), is_coalesced=True,
                                       check_invariants=False)

    def sample_users(self, n: int, seed: int = 0) -> UserItems:
        """The pairs of ``n`` of this index's users, drawn uniformly without replacement (the same draw for
        the same ``seed``), with all their items; ``self`` when it has at most ``n`` users or ``n`` is 0."""
        users = torch.unique(self.users)
        if n <= 0 or users.numel() <= n:
            return self
        keep = users[torch.randperm(users.numel(), generator=torch.Generator().manual_seed(seed))[:n]]
        mask = torch.isin(self.users, keep)
        return UserItems(self.users[mask], self.items[mask], self.n_users, self.n_items)

    def of(self, user: int) -> Tensor:
        return self.items[self.crow[user]:self.crow[user + 1]]
