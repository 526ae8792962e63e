"""The model registry: one literal mapping from name to builder, GNNs and baselines alike."""
from __future__ import annotations

from collections.abc import Callable

from torch_geometric.data import HeteroData

from kgrec.models.baselines import EASE, ItemKNN, LightGCNModel, Popularity, Trending
from kgrec.models.gnn import GNNRecommender, HGTEncoder, RGCNEncoder


def _encoder_args(data: HeteroData, hidden: int, layers: int, dropout: float, id_embeddings: str) -> dict:
    return {
        "node_types": list(data.node_types),
        "edge_types": list(data.edge_types),
        "in_dims": {t: int(data[t].x.shape[1]) for t in data.node_types},
        "num_nodes": {t: int(data[t].num_nodes) for t in data.node_types},
        "hidden": hidden, "num_layers": layers, "dropout": dropout, "id_embeddings": id_embeddings,
    }


def _history_edge(history_tower: float) -> tuple[str, str, str] | None:
    """The schema's user → recent products relation (the derivation kgrec.data.graph computes), which
    the GNN's history tower reads; None when the tower is off."""
    if not history_tower:
        return None
    from kgrec.data.graph import RECENT_DERIVATION
    from kgrec.data.schema import load_schema

    return next(e.triple for e in load_schema().edges.values() if e.derived == RECENT_DERIVATION)


def build_rgcn(data: HeteroData, hidden: int = 64, layers: int = 2, dropout: float = 0.0, id_embeddings: str = "all",
               history_tower: float = 0.0, **_: object) -> GNNRecommender:
    return GNNRecommender(RGCNEncoder(**_encoder_args(data, hidden, layers, dropout, id_embeddings)),
                          data["product"].num_nodes, history_tower=history_tower,
                          history_edge=_history_edge(history_tower))


def build_hgt(data: HeteroData, hidden: int = 64, layers: int = 2, dropout: float = 0.0, id_embeddings: str = "all",
              history_tower: float = 0.0, **_: object) -> GNNRecommender:
    return GNNRecommender(HGTEncoder(**_encoder_args(data, hidden, layers, dropout, id_embeddings)),
                          data["product"].num_nodes, history_tower=history_tower,
                          history_edge=_history_edge(history_tower))


def build_lightgcn(data: HeteroData, **_: object) -> LightGCNModel:
    return LightGCNModel(data["user"].num_nodes, data["product"].num_nodes)


def build_ease(data: HeteroData, **_: object) -> EASE:
    return EASE(data["user"].num_nodes, data["product"].num_nodes)


def build_itemknn(data: HeteroData, **_: object) -> ItemKNN:
    return ItemKNN(data["user"].num_nodes, data["product"].num_nodes)


def build_popularity(data: HeteroData, **_: object) -> Popularity:
    return Popularity(data["user"].num_nodes, data["product"].num_nodes)


def build_trending(data: HeteroData, **_: object) -> Trending:
    return Trending(data["user"].num_nodes, data["product"].num_nodes)


MODELS: dict[str, Callable[..., object]] = {
    "rgcn": build_rgcn,
    "hgt": build_hgt,
    "lightgcn": build_lightgcn,
    "ease": build_ease,
    "itemknn": build_itemknn,
    "popularity": build_popularity,
    "trending": build_trending,
}


def build_model(name: str, data: HeteroData, cfg):
    """A fresh registry model for the graph ``data``, configured from a :class:`kgrec.config.TrainConfig`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](
        data, hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout, id_embeddings=cfg.id_embeddings,
        history_tower=cfg.history_tower,
    )
