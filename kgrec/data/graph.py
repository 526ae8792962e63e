"""Catalog + features + split → ``torch_geometric.data.HeteroData`` and id maps, driven by the schema.

Every schema edge with rows becomes an edge type plus its reverse. The target edge
(user→product) holds only training interactions: held-out pairs and their reverse edges are absent.
Node and edge types without rows are left out (PyG layers cannot handle empty types).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from kgrec.config import TrainConfig
from kgrec.data.catalog import Catalog
from kgrec.data.interactions import UserItems
from kgrec.data.schema import Schema, load_schema
from kgrec.features.build import Features

COOCCURRENCE_NEIGHBOURS = 20
RECENT_PRODUCTS = TrainConfig.recent_products  # the last products recently_chose links (the reason is in kgrec.config)
DERIVED_MIN_SUPPORT = TrainConfig.min_support  # users behind a derived edge (the reason is in kgrec.config)
SUPPORTED_DERIVATIONS = ("train_cooccurrence", "train_sequence")  # the derivations min_support applies to
RECENT_DERIVATION = "train_recent"  # each user's last products (recent_products of them)


def _time_order(train: pd.DataFrame, index: dict[str, pd.Index]) -> tuple[np.ndarray, np.ndarray]:
    """(user index ``[n]``, product index ``[n]``) of ``train``'s rows sorted by user, then time (file
    order among equal or unknown times)."""
    order = pd.DataFrame({"u": index["user"].get_indexer(train["user_id"]),
                          "t": train["timestamp"].astype("float64").fillna(np.inf).to_numpy(),
                          "pos": np.arange(len(train)),
                          "i": index["product"].get_indexer(train["product_id"])})
    order = order.sort_values(["u", "t", "pos"], kind="stable")
    return order["u"].to_numpy(), order["i"].to_numpy()


def _recent_edges(train: pd.DataFrame, index: dict[str, pd.Index], last: int) -> torch.Tensor:
    """``[2, E]`` (user, product) for the ``last`` most recent distinct products of each user's training
    history (a product chosen again counts at its latest time)."""
    users, items = _time_order(train, index)
    keys = users.astype(np.int64) * len(index["product"]) + items
    _, first_from_end = np.unique(keys[::-1], return_index=True)
    keep = np.zeros(len(keys), dtype=bool)
    keep[len(keys) - 1 - first_from_end] = True  # each (user, product) at its latest position
    users, items = users[keep], items[keep]
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], len(users) > 0])  # each user's last row
    sizes = np.diff(np.r_[-1, ends])
    to_end = np.repeat(ends, sizes) - np.arange(len(users))  # rows after this one within its user
    recent = to_end < last
    return torch.from_numpy(np.stack([users[recent], items[recent]]).astype(np.int64))


def _sequence_edges(train: pd.DataFrame, index: dict[str, pd.Index], min_support: int) -> torch.Tensor:
    """``[2, E]`` (earlier product, next product) for every two consecutive distinct products of a user's
    training history in time order (file order among equal or unknown times), kept when at least
    ``min_support`` histories have it (once per history)."""
    users, items = _time_order(train, index)
    same = (users[1:] == users[:-1]) & (items[1:] != items[:-1])
    pairs = np.stack([users[:-1][same], items[:-1][same], items[1:][same]])
    pairs = np.unique(pairs, axis=1)[1:]  # once per (user, earlier, next)
    pairs, support = np.unique(pairs, axis=1, return_counts=True)
    return torch.from_numpy(pairs[:, support >= min_support].astype(np.int64))


def _add_derived(data: HeteroData, spec, train: pd.DataFrame, index: dict[str, pd.Index],
                 min_support: int = DERIVED_MIN_SUPPORT, recent_products: int = RECENT_PRODUCTS) -> None:
    """Edges computed from the training interactions only: ``train_cooccurrence`` links each product
    to its ``COOCCURRENCE_NEIGHBOURS`` most similar products (cosine of their interaction vectors);
    ``train_sequence`` links each product to the products users chose right after it; ``train_recent``
    links each user to the ``recent_products`` products they chose last."""
    if spec.derived not in (*SUPPORTED_DERIVATIONS, RECENT_DERIVATION):
        raise ValueError(f"edge {spec.name}: unknown derivation {spec.derived!r}")
    if len(train) == 0:
        return
    if spec.derived == RECENT_DERIVATION:
        edge_index = _recent_edges(train, index, recent_products)  # user → product: hears from its last picks
    elif spec.derived == "train_sequence":
        edge_index = _sequence_edges(train, index, min_support)  # earlier → next: a product hears from what came before
        if edge_index.shape[1] == 0:
            return
    else:
        from kgrec.models.baselines import ItemKNN

        users = torch.from_numpy(index["user"].get_indexer(train["user_id"]).astype(np.int64))
        items = torch.from_numpy(index["product"].get_indexer(train["product_id"]).astype(np.int64))
        n_users, n_items = len(index["user"]), len(index["product"])
        history = UserItems(users, items, n_users, n_items)  # (user, product) pairs, each once
        knn = ItemKNN(n_users, n_items, neighbours=COOCCURRENCE_NEIGHBOURS).fit(history)
        nbr, item, cos = knn.top_neighbours(COOCCURRENCE_NEIGHBOURS)
        degree = torch.bincount(history.items, minlength=n_items).double()  # users per product
        shared = (cos.double() * (degree[nbr] * degree[item]).sqrt()).round()  # users who chose both
        keep = shared >= min_support
        nbr, item = nbr[keep], item[keep]
        edge_index = torch.stack([nbr, item])  # neighbour → product: a product hears from its neighbours
    data[spec.triple].edge_index = edge_index
    data[spec.reverse_triple].edge_index = edge_index.flip(0)


@dataclass(frozen=True)
class IdMaps:
    """Catalog ids (strings) of every node type, in graph index order."""

    ids: dict[str, list[str]]

    def index(self, node_type: str) -> pd.Index:
        return pd.Index(self.ids[node_type])

    def to_dict(self) -> dict[str, list[str]]:
        return self.ids


def build_graph(catalog: Catalog, features: Features, train_rows: np.ndarray,
                schema: Schema | None = None, relations: tuple[str, ...] | None = None,
                min_support: int = DERIVED_MIN_SUPPORT,
                recent_products: int = RECENT_PRODUCTS) -> tuple[HeteroData, IdMaps]:
    """Build the message-passing graph.

    ``relations`` limits the knowledge-graph edge types (for ablations); the target edge is always in.
    ``min_support``: the users a derived product–product edge needs behind it; ``recent_products``: the
    last products of each user that ``recently_chose`` links.
    Each node type gets ``x`` ``[num_nodes, F]`` (F may be 0) and ``num_nodes``. The target edge
    gets ``edge_attr`` ``[E, 3]`` = (rating/5 or 0, has rating, review sentiment).
    """
    schema = schema or load_schema()
    data = HeteroData()
    ids = {}
    index = {}
    for spec in schema.nodes.values():
        df = catalog.tables[spec.table]
        ids[spec.name] = df[spec.key].tolist()
        index[spec.name] = pd.Index(ids[spec.name])
    train = catalog.interactions.iloc[train_rows]
    for spec in schema.edges.values():
        if relations is not None and not spec.target and spec.name not in relations:
            continue
        if spec.derived is not None:
            _add_derived(data, spec, train, index, min_support, recent_products)
            continue
        df = train if spec.target else catalog.edge_table(spec.name)
        if len(df) == 0:
            continue
        src = index[spec.src].get_indexer(df[spec.src_col])
        dst = index[spec.dst].get_indexer(df[spec.dst_col])
        ok = (src >= 0) & (dst >= 0)
        if not ok.all():
            raise ValueError(
                f"edge {spec.name}: {int((~ok).sum())} rows reference unknown nodes (catalog not validated?)"
            )
        pairs = np.unique(np.stack([src, dst]), axis=1) if not spec.target else np.stack([src, dst])
        edge_index = torch.from_numpy(pairs.astype(np.int64))
        data[spec.triple].edge_index = edge_index
        data[spec.reverse_triple].edge_index = edge_index.flip(0)
        if spec.target:
            rating = train["rating"].to_numpy(dtype="float64")
            attr = np.stack([np.nan_to_num(rating / 5.0), ~np.isnan(rating), features.edge_sentiment], 1)
            data[spec.triple].edge_attr = torch.from_numpy(attr.astype(np.float32))
            data[spec.reverse_triple].edge_attr = data[spec.triple].edge_attr
    used = {t for et in data.edge_types for t in (et[0], et[2])} | {schema.target.src, schema.target.dst}
    for node in schema.nodes:
        if node not in used or len(ids[node]) == 0:
            continue
        x = features.x.get(node)
        n = len(ids[node])
        data[node].x = torch.from_numpy(x) if x is not None else torch.zeros((n, 0))
        data[node].num_nodes = n
    for et in list(data.edge_types):  # drop edges whose node types were dropped
        if et[0] not in data.node_types or et[2] not in data.node_types:
            del data[et]
    data.validate(raise_on_error=True)
    return data, IdMaps({k: v for k, v in ids.items() if k in data.node_types})
