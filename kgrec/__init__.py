"""kgrec: product recommendations from a GNN over an e-commerce knowledge graph."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Recommender", "__version__"]


def __getattr__(name: str):
    if name == "Recommender":  # lazy: importing kgrec must not import torch
        from .recommend import Recommender

        return Recommender
    raise AttributeError(name)
