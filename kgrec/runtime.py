"""Small torch helpers shared by the encoders, the sentiment models and training."""
from __future__ import annotations

import torch
from torch import Tensor


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when torch sees it, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean of the real tokens' states, L2-normalised: ``hidden [B, T, H]``, ``attention_mask [B, T]`` →
    ``[B, H]`` (float32)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)
