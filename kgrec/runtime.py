"""Small torch helpers shared by the encoders, the sentiment models and training, and the process's memory
allocator settings for training (:func:`keep_freed_memory`)."""
from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch
from torch import Tensor

# glibc's malloc serves a block above its mmap threshold (which its dynamic rule caps at 32 MiB) from fresh
# pages and unmaps it on free, and returns freed memory at the top of the heap above its trim threshold.
# A training step allocates [batch × products] buffers and [nodes × d] activations and gradients anew every
# step, so it page-faults through tens of MiB each time: a fifth of an R-GCN epoch at 149k pairs. Raising
# both thresholds keeps freed blocks in the heap for the next step. Blocks above 64 MiB still come from the
# kernel: at 1.1M interactions a 512 MiB threshold made the epoch faster still (40.1 → 32.6 s) but the peak
# resident set grew from 3.34 to 4.02 GiB (freed holes the heap cannot return); at 64 MiB, 38.8 s and 3.37 GiB
# (one run each; the same code varies by about ±1.5 s there).
MMAP_THRESHOLD = 1 << 26  # 64 MiB
TRIM_THRESHOLD = 1 << 28  # 256 MiB of free memory may stay at the top of the heap
MALLOC_ENV = "KGREC_MALLOC_TUNING"  # "0": leave glibc's malloc settings alone
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_malloc_tuned: bool | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when torch sees it, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the kernel (see
    :data:`MMAP_THRESHOLD`): once per process, on Linux with glibc, unless ``KGREC_MALLOC_TUNING=0``.
    Computed values do not change; training on CPU gets faster (an R-GCN epoch at 149k pairs: 11.2–11.7 s →
    8.8–9.6 s) and the resident set may stay near its peak after a step. Returns whether the settings are
    in effect."""
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if os.environ.get(MALLOC_ENV, "1") != "0" and sys.platform.startswith("linux") \
                and platform.libc_ver()[0] == "glibc":
            try:
                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
                bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _malloc_tuned


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of the real tokens' states, L2-normalised: ``hidden [B, T, H]``, ``attention_mask [B, T]`` →
    ``[B, H]`` (float32)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)
