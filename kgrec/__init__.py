"""kgrec: product recommendations from a GNN over an e-commerce knowledge graph."""
from __future__ import annotations

import warnings

__version__ = "0.1.0"

# Notices of the libraries kgrec uses, not about anything a kgrec user can change: PyG scripts a few
# helpers with torch.jit at import, and torch calls its sparse CSR layout (used for message passing) beta.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state", category=UserWarning)

__all__ = ["ColdStart", "Recommender", "__version__"]


def __getattr__(name: str):
    if name == "Recommender":  # lazy: importing kgrec must not import torch
        from kgrec.serve.recommend import Recommender

        return Recommender
    if name == "ColdStart":
        from kgrec.serve.coldstart import ColdStart

        return ColdStart
    raise AttributeError(name)
