"""Leakage-safe splits of the user→product target edge.

Splitting works on unique (user, product) pairs: every interaction row of a held-out pair (a view
and a later purchase, say) leaves the training graph together. Strategies:

- ``loo``: temporal leave-one-out per user — last pair → test, the one before → validation; users
  with fewer than 3 pairs train only. Ties in time keep file order.
- ``random``: the same per-user hold-out with a seeded random order (for data without timestamps).
- ``time``: a global time cut — the last 10 % of pairs by time → test, the 10 % before → validation.
- ``val-only``: only a validation pair per user (for early stopping); no test set.
- ``all``: every pair trains, nothing is held out: the refit that a run serves, once its settings
  and epoch count were chosen on one of the splits above (not a choice of ``--split``).
- ``STRATEGY+val`` (``loo+val``, …): that split with its validation pairs trained on and its test pairs
  still held out: a model refitted with what validation chose, then tested, as what a run serves
  would be (``benchmarks/history_protocols.py``; not a choice of ``--split``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("loo", "random", "time", "val-only")
ALL = "all"
WITH_VAL = "+val"  # suffix: the validation pairs train


@dataclass(frozen=True)
class Split:
    """Pairs (``user_id``, ``product_id``, ``timestamp``) per part; rows of the interactions table per part."""

    strategy: str
    train_pairs: pd.DataFrame
    val_pairs: pd.DataFrame
    test_pairs: pd.DataFrame
    train_rows: np.ndarray  # indices into catalog.interactions that may be used for training / features

    def summary(self) -> dict[str, int]:
        return {"train": len(self.train_pairs), "val": len(self.val_pairs), "test": len(self.test_pairs)}


def unique_pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, product) with the time it first happened and its file position."""
    df = interactions[["user_id", "product_id", "timestamp"]].copy()
    df["order"] = np.arange(len(df))
    df["t"] = df["timestamp"].astype("float64").fillna(np.inf)
    first = df.sort_values(["t", "order"], kind="stable").drop_duplicates(["user_id", "product_id"])
    return first.drop(columns="t").reset_index(drop=True)


def split_interactions(interactions: pd.DataFrame, strategy: str = "loo", seed: int = 0) -> Split:
    if strategy.endswith(WITH_VAL) and strategy[: -len(WITH_VAL)] in SPLITS:
        split = split_interactions(interactions, strategy[: -len(WITH_VAL)], seed)
        train = pd.concat([split.train_pairs, split.val_pairs], ignore_index=True)
        return Split(split.strategy + WITH_VAL, train, split.val_pairs.iloc[:0], split.test_pairs,
                     _rows_outside(interactions, split.test_pairs))
    if strategy not in SPLITS and strategy != ALL:
        raise ValueError(f"unknown split {strategy!r}; choose one of {', '.join(SPLITS)}")
    pairs = unique_pairs(interactions)
    has_time = pairs["timestamp"].notna().any()
    if strategy == "loo" and not has_time:
        strategy_used = "loo (file order: no timestamps)"
    else:
        strategy_used = strategy
    t = pairs["timestamp"].astype("float64").fillna(np.inf).to_numpy()
    if strategy == "random":
        key = np.random.default_rng(seed).random(len(pairs))
    else:
        key = t
    pairs = pairs.assign(_key=key).sort_values(["user_id", "_key", "order"], kind="stable")
    part = np.zeros(len(pairs), dtype=np.int8)  # 0 train, 1 val, 2 test
    if strategy == "time":
        order = np.argsort(pairs["_key"].to_numpy(), kind="stable")
        n = len(pairs)
        part[order[int(n * 0.9):]] = 2
        part[order[int(n * 0.8):int(n * 0.9)]] = 1
    elif strategy != ALL:
        rank_from_end = pairs.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
        size = pairs.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
        eligible = size >= 3
        if strategy == "val-only":
            part[(rank_from_end == 0) & eligible] = 1
        else:
            part[(rank_from_end == 0) & eligible] = 2
            part[(rank_from_end == 1) & eligible] = 1
    pairs = pairs.drop(columns="_key")
    train, val, test = (pairs[part == k].reset_index(drop=True) for k in (0, 1, 2))
    return Split(strategy_used, train, val, test, _rows_outside(interactions, pd.concat([val, test])))


def _rows_outside(interactions: pd.DataFrame, held: pd.DataFrame) -> np.ndarray:
    """Indices of the ``interactions`` rows whose (user, product) pair is not one of ``held``'s pairs."""
    keys = ["user_id", "product_id"]
    return np.flatnonzero(~pd.MultiIndex.from_frame(interactions[keys]).isin(pd.MultiIndex.from_frame(held[keys])))
