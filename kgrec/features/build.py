"""Node features from text and reviews, computed only from what the training split may see.

Product features = text embedding ⊕ sentiment aggregates (mean, std, log count, share negative) ⊕
statistics (log train popularity, mean train rating, log price, has price). Category, brand, tag and
entity features are embeddings of their names. User features: sentiment tendency and log activity.
Every aggregate uses only ``split.train_rows``, so held-out interactions leave no trace (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kgrec.data.catalog import Catalog
from kgrec.data.schema import load_schema
from kgrec.features.sentiment import fit_sentiment, review_labels
from kgrec.features.text import TextEncoder

# the statistic columns after each node type's text embedding, in order; a new node (cold start) gets
# the row of one nobody has interacted with (``unseen_stats``), standardised like the rest
PRODUCT_STATS = ("sent_mean", "sent_std", "log_reviews", "share_negative", "log_popularity", "mean_rating",
                 "log_price", "has_price")
USER_STATS = ("sentiment_tendency", "log_activity")
Z_CLIP = 5.0  # standardised statistics are clipped to ±Z_CLIP, so one extreme row cannot dominate a feature


def require_finite(x: np.ndarray, what: str, columns: list[str] | None = None) -> None:
    """Raise a clear error when ``x [N, C]`` holds NaN or infinity (naming the first bad column)."""
    bad = ~np.isfinite(x)
    if bad.any():
        col = int(np.flatnonzero(bad.any(0))[0])
        name = columns[col - (x.shape[1] - len(columns))] if columns and col >= x.shape[1] - len(columns) else f"#{col}"
        raise ValueError(f"{what}: {int(bad.any(1).sum())} rows have non-finite values (first in column {name}); "
                         f"this is a kgrec bug or an unvalidated input, please report it")


def unseen_stats(node: str, price: float | None = None, interactions: int = 0) -> np.ndarray:
    """The raw statistic row ``[C]`` of a new product (with its ``price``) or a new user (with their
    ``interactions`` picks) that has no reviews: in the column order of :data:`PRODUCT_STATS` / :data:`USER_STATS`."""
    if node == "product":
        known = price is not None and np.isfinite(price) and price >= 0
        values = {"log_price": np.log1p(price) if known else 0.0, "has_price": float(known)}
        return np.array([values.get(c, 0.0) for c in PRODUCT_STATS])
    return np.array([{"log_activity": np.log1p(interactions)}.get(c, 0.0) for c in USER_STATS])


def fit_norm(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and stds of ``stats [N, C]`` for :func:`standardise`; a constant column gets std 1."""
    mean, std = stats.mean(0), stats.std(0)
    return mean, np.where(std > 1e-6, std, 1.0)


def standardise(stats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(stats - mean) / std`` clipped to ``±Z_CLIP``: ``[N, C]`` → ``[N, C]``."""
    return np.clip((stats - mean) / std, -Z_CLIP, Z_CLIP)


@dataclass
class Features:
    """Per node type a ``[num_nodes, dim]`` float32 matrix, rows in catalog table order."""

    x: dict[str, np.ndarray]
    edge_sentiment: np.ndarray  # [len(train_rows)] score of each training interaction (0 without text)
    sentiment: dict = field(default_factory=dict)  # the sentiment model's metrics, or why there is none
    columns: dict[str, list[str]] = field(default_factory=dict)  # names of the non-embedding columns
    # per node type the (mean, std) ``[C]`` that standardised its statistic columns (for new nodes)
    norm: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def compose_text(values: dict[str, str | None], node: str = "product") -> str:
    """A node's text from the schema's ``text`` list: ``values`` maps each item (a column, or a relation
    whose target's text is given) to its text; relations are written as ``"<Label>: <text>"``, e.g.
    ``"Red mug. A red mug. Brand: Acme. Category: Home > Kitchen"``. Missing values are left out."""
    schema = load_schema()
    parts = []
    for item in schema.nodes[node].text:
        value = values.get(item)
        if not isinstance(value, str) or not value:
            continue
        parts.append(f"{schema.nodes[schema.edges[item].dst].label}: {value}" if item in schema.edges else value)
    return ". ".join(parts)


def node_texts(catalog: Catalog, node: str) -> list[str]:
    """One text per row of ``node``'s table (catalog order), composed as the schema says; a row with
    no text at all is its id, except a product, whose text is then empty (its id says nothing)."""
    schema = load_schema()
    spec = schema.nodes[node]
    table = catalog.tables[spec.table]
    columns = {item: table[item].tolist() for item in spec.text if item not in schema.edges}
    for item in spec.text:
        if item in schema.edges:  # the text of the relation's (first) target
            edge = schema.edges[item]
            target = schema.nodes[edge.dst]
            target_text = dict(zip(catalog.tables[target.table][target.key], node_texts(catalog, edge.dst)))
            links = catalog.edge_table(item).drop_duplicates(edge.src_col)
            first = dict(zip(links[edge.src_col], links[edge.dst_col]))
            columns[item] = [target_text.get(first.get(k)) for k in table[spec.key]]
    keys = table[spec.key].tolist()
    fallback = (lambda key: "") if node == "product" else str
    return [compose_text({item: col[i] for item, col in columns.items()}, node) or fallback(keys[i])
            for i in range(len(keys))]


def product_texts(catalog: Catalog) -> list[str]:
    """One text per product (catalog order): title, description, brand and category, as the schema says."""
    return node_texts(catalog, "product")


def compute_features(catalog: Catalog, train_rows: np.ndarray, encoder: TextEncoder | None,
                     use_text: bool = True, use_sentiment: bool = True, seed: int = 0,
                     sentiment_method: str = "auto", progress: bool = False) -> Features:
    """Build all node features. ``encoder=None`` or ``use_text=False`` leaves text out (ablation).

    ``sentiment_method``: ``auto`` (the better of ``head`` and ``tfidf`` on validation), ``head`` (linear
    head on the frozen encoder, seconds), ``tfidf`` (character n-grams, any language, no encoder) or
    ``lora``/``full`` (fine-tune the encoder on the training reviews, warm-started from the head; minutes
    on CPU). See :mod:`kgrec.features.sentiment`.
    """
    inter = catalog.interactions.iloc[train_rows]
    n_products = len(catalog.products)
    pid_index = pd.Index(catalog.products["product_id"])
    uid_index = pd.Index(catalog.users["user_id"])
    x: dict[str, np.ndarray] = {}
    text_on = use_text and encoder is not None

    # review sentiment from the training reviews only
    edge_sent = np.zeros(len(inter), dtype=np.float32)
    info: dict = {"enabled": False}
    has_text = inter["text"].notna().to_numpy()
    if use_sentiment and has_text.sum() >= 10:
        texts = inter["text"][has_text].astype(str).tolist()
        labels = review_labels(inter["rating"].to_numpy(dtype="float64")[has_text],
                               inter["sentiment"].to_numpy(dtype=object)[has_text])
        try:
            edge_sent[has_text], info = fit_sentiment(texts, labels, encoder, sentiment_method, seed, progress)
        except ValueError as exc:
            info = {"enabled": False, "reason": str(exc)}
    elif use_sentiment:
        info = {"enabled": False, "reason": "fewer than 10 training reviews with text"}

    p_idx = pid_index.get_indexer(inter["product_id"])
    u_idx = uid_index.get_indexer(inter["user_id"])
    ones = np.ones(len(inter))
    text_mask = has_text.astype(np.float64)
    cnt = np.bincount(p_idx, weights=text_mask, minlength=n_products)
    s1 = np.bincount(p_idx, weights=edge_sent * text_mask, minlength=n_products)
    s2 = np.bincount(p_idx, weights=(edge_sent ** 2) * text_mask, minlength=n_products)
    neg = np.bincount(p_idx, weights=(edge_sent < -0.3) * text_mask, minlength=n_products)
    mean = np.divide(s1, cnt, out=np.zeros_like(s1), where=cnt > 0)
    std = np.sqrt(np.maximum(np.divide(s2, cnt, out=np.zeros_like(s2), where=cnt > 0) - mean ** 2, 0))
    share_neg = np.divide(neg, cnt, out=np.zeros_like(neg), where=cnt > 0)
    pop = np.bincount(p_idx, weights=ones, minlength=n_products)
    rated = inter["rating"].notna().to_numpy()
    r_sum = np.bincount(p_idx[rated], weights=inter["rating"].to_numpy(dtype="float64")[rated],
                        minlength=n_products).astype(np.float64)
    r_cnt = np.bincount(p_idx[rated], minlength=n_products)
    mean_rating = np.divide(r_sum, r_cnt, out=np.zeros_like(r_sum), where=r_cnt > 0) / 5.0
    price = catalog.products["price"].to_numpy(dtype="float64")
    known_price = np.isfinite(price) & (price >= 0)  # the catalog clears other prices; never trust that here
    log_price = np.log1p(np.where(known_price, price, 0.0))
    stats = np.stack([mean, std, np.log1p(cnt), share_neg, np.log1p(pop), mean_rating, log_price,
                      known_price.astype(np.float64)], 1)
    columns = {"product": list(PRODUCT_STATS)}
    norm = {"product": fit_norm(stats)}
    stats = standardise(stats, *norm["product"])
    parts = [encoder(product_texts(catalog))] if text_on else []
    x["product"] = np.concatenate(parts + [stats.astype(np.float32)], 1).astype(np.float32)
    require_finite(x["product"], "product features", columns["product"])

    n_users = len(catalog.users)
    u_cnt = np.bincount(u_idx, weights=text_mask, minlength=n_users)
    u_sum = np.bincount(u_idx, weights=edge_sent * text_mask, minlength=n_users)
    u_act = np.bincount(u_idx, weights=ones, minlength=n_users)
    user_stats = np.stack([np.divide(u_sum, u_cnt, out=np.zeros_like(u_sum), where=u_cnt > 0), np.log1p(u_act)], 1)
    norm["user"] = fit_norm(user_stats)
    x["user"] = standardise(user_stats, *norm["user"]).astype(np.float32)
    columns["user"] = list(USER_STATS)

    for spec in load_schema().nodes.values():  # every other node type: the embedding of its text
        if spec.name in ("user", "product") or len(catalog.tables[spec.table]) == 0:
            continue
        n = len(catalog.tables[spec.table])
        x[spec.name] = encoder(node_texts(catalog, spec.name)) if text_on and spec.text else \
            np.zeros((n, 0), dtype=np.float32)
    return Features(x, edge_sent, info, columns, norm)
