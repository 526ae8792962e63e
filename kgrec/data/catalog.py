"""The canonical catalog tables, their validation, and the load report.

A :class:`Catalog` is what every loader returns and what graph building, the Neo4j import and the
exporters consume. All ids are strings. Missing values are ``None`` (text), ``NaN`` (float) or
``<NA>`` (nullable integer timestamps); text is never an empty string.
"""
from __future__ import annotations

import html
import json
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import CatalogError

# Columns of every canonical table, in order. Keys of node tables come first.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id", "name"),
    "products": ("product_id", "title", "description", "price", "brand_id"),
    "categories": ("category_id", "name", "parent_id"),
    "brands": ("brand_id", "name"),
    "tags": ("tag_id", "name"),
    "entities": ("entity_id", "name"),
    "product_categories": ("product_id", "category_id"),
    "product_tags": ("product_id", "tag_id"),
    "product_links": ("src_id", "dst_id", "kind"),
    "triples": ("head_id", "relation", "tail_id", "kind"),
    "interactions": ("user_id", "product_id", "kind", "rating", "timestamp", "text", "sentiment"),
}
FLOAT_COLUMNS = {"price", "rating"}
INT_COLUMNS = {"timestamp"}
LINK_KINDS = ("also_bought", "also_viewed")
TRIPLE_HEAD_KINDS = ("product", "entity")

MAX_TEXT_CHARS = 20_000
CATEGORY_SEP = " > "  # between the levels of a category id
_TAG_RE = re.compile(r"<[^>]*>|<[^>]*$")
_WS_RE = re.compile(r"\s+")


@dataclass
class LoadReport:
    """Counts of every row that was skipped, merged or repaired, with a few example locations."""

    rows_in: Counter = field(default_factory=Counter)  # per source file
    skipped: Counter = field(default_factory=Counter)  # reason -> rows dropped
    merged: Counter = field(default_factory=Counter)  # reason -> rows folded into another row
    repaired: Counter = field(default_factory=Counter)  # reason -> rows kept with a value fixed or cleared
    examples: dict[str, list[str]] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)  # text file -> how it was decoded

    def _note(self, reason: str, where: str | None) -> None:
        if where is not None:
            ex = self.examples.setdefault(reason, [])
            if len(ex) < 5:
                ex.append(where)

    def skip(self, reason: str, n: int = 1, where: str | None = None) -> None:
        if n:
            self.skipped[reason] += n
            self._note(reason, where)

    def merge(self, reason: str, n: int = 1, where: str | None = None) -> None:
        if n:
            self.merged[reason] += n
            self._note(reason, where)

    def repair(self, reason: str, n: int = 1, where: str | None = None) -> None:
        if n:
            self.repaired[reason] += n
            self._note(reason, where)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": dict(self.rows_in),
            "skipped": dict(self.skipped),
            "merged": dict(self.merged),
            "repaired": dict(self.repaired),
            "examples": self.examples,
            "encodings": self.encodings,
        }


def is_missing(value: Any) -> bool:
    """A missing cell as readers give it: ``None``, ``NaN`` (Arrow-backed text columns) or ``pd.NA``."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _clean_text(value: Any) -> tuple[str | None, bool]:
    """:func:`clean_text` without a report: (text, whether it was truncated)."""
    if is_missing(value):
        return None, False
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v is not None)
    text = str(value)
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
        if "<" in text:  # entities that decoded into tags
            text = _TAG_RE.sub(" ", text)
    text = _WS_RE.sub(" ", text).strip()
    if not text:
        return None, False
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS], True
    return text, False


def clean_text(value: Any, report: LoadReport | None = None, where: str | None = None) -> str | None:
    """Unescape HTML entities, strip tags, collapse whitespace; ``None`` for empty.

    Texts longer than :data:`MAX_TEXT_CHARS` are truncated (counted as ``text_truncated``).
    """
    text, truncated = _clean_text(value)
    if truncated and report is not None:
        report.repair("text_truncated", where=where)
    return text


def _per_distinct(values, fn, unhashable_per_row: bool = True, fn_all=None) -> tuple[np.ndarray, list]:
    """``fn`` once per distinct value of ``values`` (missing values as one, ``None``): exports repeat
    most of their strings. Returns ``(codes [N], results)`` with ``results[codes[i]] = fn(values[i])``
    (the last result is the missing values'). ``fn_all``, when given, maps the list of distinct values
    at once (a vectorised ``fn``). Unhashable values (JSON arrays) get one call per row, or, with
    ``unhashable_per_row`` False, raise ``TypeError``."""
    if not isinstance(values, pd.Series):
        values = pd.Series(list(values), dtype=object)
    elif not isinstance(values.dtype, pd.StringDtype):  # Arrow-backed text is factorised as it is
        values = values.astype(object)
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:
        if not unhashable_per_row:
            raise
        return np.arange(len(values)), [fn(v) for v in values]
    results = fn_all(uniques.tolist()) if fn_all is not None else [fn(v) for v in uniques]
    return codes, results + [fn(None)]  # code -1 (missing) picks the last


def _distinct(values: pd.Series) -> set:
    """The set of a column's non-missing values (hashed once per distinct value in pandas, not per row
    in Python: ``set(series)`` iterates an Arrow-backed column element by element)."""
    return set(values.dropna().unique().tolist())


def _map_distinct(values, fn) -> np.ndarray:
    """``[fn(v) for v in values]`` as an object array, computed once per distinct value."""
    codes, results = _per_distinct(values, fn)
    mapped = np.empty(len(results), dtype=object)
    mapped[:] = results
    return mapped[codes]


def clean_text_column(values, report: LoadReport | None = None, where: str | None = None) -> np.ndarray:
    """:func:`clean_text` of every value, computed once per distinct value; truncations counted per row."""
    codes, results = _per_distinct(values, _clean_text)
    texts = np.empty(len(results), dtype=object)
    texts[:] = [text for text, _ in results]
    truncated = int(np.array([cut for _, cut in results], dtype=bool)[codes].sum())
    if truncated and report is not None:
        report.repair("text_truncated", truncated, where=where)
    return texts[codes]


def add_category_path(categories: dict[str, dict], names: list[str]) -> str | None:
    """Add a category path (``["Home", "Kitchen", "Mugs"]``) to ``categories`` (id → row), one row per level
    with its parent; returns the leaf's id (``"Home > Kitchen > Mugs"``), or None for an empty path."""
    parent = None
    for depth in range(len(names)):
        cid = CATEGORY_SEP.join(names[: depth + 1])
        categories.setdefault(cid, {"category_id": cid, "name": names[depth], "parent_id": parent})
        parent = cid
    return parent


def slug(name: str) -> str:
    """A stable id for a named thing (brand, tag): lower case, single spaces."""
    return _WS_RE.sub(" ", name.strip().lower())


def empty_table(name: str) -> pd.DataFrame:
    cols = TABLE_COLUMNS[name]
    return _coerce(pd.DataFrame({c: [] for c in cols}), name)


ID_COLUMNS = {"user_id", "product_id", "category_id", "brand_id", "tag_id", "entity_id", "parent_id", "src_id",
              "dst_id", "head_id", "tail_id"}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def to_float(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")`` as float64. Arrow-backed text is parsed by Arrow in one
    pass when every value is a plain number (pandas would turn each into a Python object first); a
    column with anything else (spaces, words) takes pandas' parser, which clears what is not a number."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            parsed = pc.cast(pa.chunked_array(values.array._pa_array), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, AttributeError):
            pass
        else:
            return pd.Series(parsed.to_numpy(), index=values.index, dtype="float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


MISSING_WORDS = frozenset({"", "nan", "null", "none", "na", "n/a"})  # a cell that says "no value" (any case)


def missing_words(values: pd.Series) -> pd.Series:
    """Boolean ``[N]``: which values are a word for "no value" (:data:`MISSING_WORDS`, spaces ignored), so
    that clearing them is counted apart from values that are not numbers."""
    return values.astype(str).str.strip().str.lower().isin(MISSING_WORDS)


def _numeric(s: pd.Series, col: str, report: LoadReport | None) -> pd.Series:
    """Numbers of a column as float64: datetimes (Parquet) become epoch seconds, and values that are not
    finite numbers (``inf``, unparseable text) are cleared, counted per column."""
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("float64")
    out = to_float(s)
    bad = ~np.isfinite(out) & out.notna()
    if report is not None:
        report.repair(f"non_finite_{col}_cleared", int(bad.sum()))
        lost = s[s.notna() & out.isna()]  # given but not a number: the words for "missing" do not count
        report.repair(f"unparseable_{col}_cleared", int((~missing_words(lost)).sum()))
    return out.mask(bad)


def _id_text(v: object) -> str | None:
    """An id as text: integral floats lose their ``.0`` (``1.0`` and ``1`` are the same id)."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _clean_id(v: object) -> tuple[str | None, bool, bool]:
    """(the id in Unicode NFC without control characters, whether NFC changed it, whether control
    characters were removed)."""
    text = _id_text(v)
    if text is None:
        return None, False, False
    normalised = stripped = False
    if not text.isascii():
        nfc = unicodedata.normalize("NFC", text)
        normalised = nfc != text
        text = nfc
    if _CONTROL_RE.search(text):
        text = _CONTROL_RE.sub("", text)
        stripped = True
    return text.strip() or None, normalised, stripped


def _clean_id_all(values: list) -> list[tuple[str | None, bool, bool]]:
    """:func:`_clean_id` of every value; when all are ASCII text without control characters (the usual
    export) one check of their concatenation replaces the per-id checks."""
    if all(type(v) is str for v in values):
        joined = "".join(values)
        if joined.isascii() and not _CONTROL_RE.search(joined):
            return [(v.strip() or None, False, False) for v in values]
    return [_clean_id(v) for v in values]


def _clean_ids(values: pd.Series, col: str, report: LoadReport | None) -> np.ndarray:
    """Ids in Unicode NFC without control characters (both counted per row): twins that differ only in
    their byte form, or in an invisible NUL, are one id. Works on the distinct values only."""
    codes, results = _per_distinct(values, _clean_id, unhashable_per_row=False, fn_all=_clean_id_all)
    cleaned = np.empty(len(results), dtype=object)
    cleaned[:] = [text for text, _, _ in results]
    if report is not None:
        normalised = np.array([n for _, n, _ in results], dtype=bool)
        stripped = np.array([c for _, _, c in results], dtype=bool)
        report.repair(f"{col}_unicode_normalised", int(normalised[codes].sum()))
        report.repair(f"{col}_control_characters_removed", int(stripped[codes].sum()))
    return cleaned[codes]


# review sentiment labels as exports write them → the canonical negative/neutral/positive
SENTIMENT_WORDS = {
    "negative": "negative", "neg": "negative", "bad": "negative", "负面": "negative", "差评": "negative",
    "neutral": "neutral", "neu": "neutral", "mixed": "neutral", "中性": "neutral", "中评": "neutral",
    "positive": "positive", "pos": "positive", "good": "positive", "正面": "positive", "好评": "positive",
}
_SENTIMENT_NUMBERS = {  # chosen per column by the numbers it holds
    "binary": {0: "negative", 1: "positive"},
    "signed": {-1: "negative", 0: "neutral", 1: "positive"},
    "three": {0: "negative", 1: "neutral", 2: "positive"},
}


def sentiment_labels(values: pd.Series) -> tuple[pd.Series, int]:
    """A column of review sentiment labels → ``negative``/``neutral``/``positive`` (None where missing),
    and how many given values were not labels (cleared). Words: negative/neutral/positive, neg/neu/pos,
    good/bad, 正面/中性/负面, 好评/中评/差评. Numbers: 0/1 (negative/positive), -1/0/1, or 0/1/2 — the column
    decides which: with a -1 it is -1/0/1, with a 2 it is 0/1/2, else 0/1. Works on the distinct values."""
    codes, texts = _per_distinct(values, lambda v: None if is_missing(v) else str(v).strip().lower() or None)
    numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce").tolist()
    present = {x for x in numbers if x == x}
    scheme = "signed" if -1 in present else "three" if 2 in present else "binary"
    mapping = _SENTIMENT_NUMBERS[scheme]
    labels = [
        SENTIMENT_WORDS.get(t) if t in SENTIMENT_WORDS
        else mapping.get(int(x)) if x == x and float(x).is_integer() else None
        for t, x in zip(texts, numbers)
    ]
    label = np.empty(len(labels), dtype=object)
    label[:] = labels
    unlabelled = np.array([t is not None and lab is None for t, lab in zip(texts, labels)], dtype=bool)
    return pd.Series(label[codes], index=values.index, dtype=object), int(unlabelled[codes].sum())


def _coerce(df: pd.DataFrame, name: str, report: LoadReport | None = None) -> pd.DataFrame:
    """Canonical dtypes: object for ids/text, float64 for ratings/prices, Int64 for timestamps.

    With a ``report`` (the first pass over raw tables), every value that had to change is counted."""
    out = {}
    for col in TABLE_COLUMNS[name]:
        s = df[col] if col in df.columns else pd.Series([None] * len(df), index=df.index)
        if col in FLOAT_COLUMNS:
            out[col] = _numeric(s, col, report)
        elif col in INT_COLUMNS:
            out[col] = _numeric(s, col, report).round().astype("Int64")
        elif col in ID_COLUMNS:
            out[col] = pd.Series(_clean_ids(s, col, report), index=df.index, dtype=object)
        else:
            out[col] = pd.Series(
                _map_distinct(s.astype(object).to_numpy(), lambda v: None if (
                    v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA) else str(v)),
                index=df.index,
                dtype=object,
            )
    return pd.DataFrame(out).reset_index(drop=True)


def _canonical(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """:func:`_coerce`'s columns and dtypes for a table whose values are already clean (the end of
    :meth:`Catalog.from_tables`): no value is re-read, missing values become ``None`` in object columns."""
    out = {}
    for col in TABLE_COLUMNS[name]:
        s = df[col]
        if col in FLOAT_COLUMNS:
            out[col] = s.astype("float64")
        elif col in INT_COLUMNS:
            out[col] = s.astype("Int64")
        else:
            s = s.astype(object)
            out[col] = s.where(s.notna(), None)
    return pd.DataFrame(out).reset_index(drop=True)


@dataclass
class Catalog:
    """The canonical tables of one shop. Build with :meth:`from_tables`, which validates."""

    tables: dict[str, pd.DataFrame]
    report: LoadReport = field(default_factory=LoadReport)
    source: str = ""
    synthetic: bool = False

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_tables(
        cls,
        tables: dict[str, pd.DataFrame],
        report: LoadReport | None = None,
        source: str = "",
        synthetic: bool = False,
        rating_range: tuple[float, float] = (0.0, 5.0),
        now: float | None = None,
    ) -> Catalog:
        """Validate and normalise raw tables into a catalog.

        Rules (each a counted entry in the report, never a silent drop):
        missing ids are skipped; identical duplicate rows are merged; duplicate ids with conflicting
        values keep the first row; references to unknown products from interactions create a
        product without metadata; other dangling references are skipped; ratings outside
        ``rating_range`` or NaN are cleared; negative or future timestamps are cleared.
        """
        report = report or LoadReport()
        unknown = set(tables) - set(TABLE_COLUMNS)
        if unknown:
            raise CatalogError(f"unknown tables {sorted(unknown)}; expected some of {sorted(TABLE_COLUMNS)}")
        t = {
            name: _coerce(tables[name], name, report) if name in tables else empty_table(name) for name in TABLE_COLUMNS
        }
        price = t["products"]["price"]
        bad_price = price.notna() & (price < 0)
        report.repair("negative_price_cleared", int(bad_price.sum()))
        t["products"].loc[bad_price, "price"] = np.nan
        for name in t:
            for col in TABLE_COLUMNS[name]:
                if col in FLOAT_COLUMNS or col in INT_COLUMNS:
                    continue
                if (name == "interactions" and col == "text") or col in ("title", "description", "name"):
                    t[name][col] = clean_text_column(t[name][col], report, f"{name}.{col}")
                elif col not in ID_COLUMNS and t[name][col].notna().any():  # ids: stripped by _clean_ids
                    t[name][col] = _map_distinct(t[name][col], lambda v: None if v is None else (v.strip() or None))

        # node tables: ids required, duplicates merged or resolved
        for name, key in (
            ("users", "user_id"),
            ("products", "product_id"),
            ("categories", "category_id"),
            ("brands", "brand_id"),
            ("tags", "tag_id"),
            ("entities", "entity_id"),
        ):
            t[name] = _dedupe_nodes(t[name], key, name, report)

        # interactions: required ids, kinds, ratings, timestamps
        inter = t["interactions"]
        bad = inter["user_id"].isna() | inter["product_id"].isna()
        report.skip("interaction_missing_id", int(bad.sum()))
        inter = inter[~bad].copy()
        inter["kind"] = inter["kind"].fillna("purchase").str.lower()
        from kgrec.data.schema import load_schema  # local: schema reading is cheap, keeps import order simple

        kinds = set(load_schema().interaction_kinds)
        bad_kind = ~inter["kind"].isin(kinds)
        report.skip("unknown_interaction_kind", int(bad_kind.sum()))
        inter = inter[~bad_kind]
        lo, hi = rating_range
        r = inter["rating"]
        out = r.notna() & ((r < lo) | (r > hi))
        report.repair("rating_out_of_range_cleared", int(out.sum()))
        inter.loc[out, "rating"] = np.nan
        inter["sentiment"], unlabelled = sentiment_labels(inter["sentiment"])
        report.repair("unparseable_sentiment_cleared", unlabelled)
        ts = inter["timestamp"]
        limit = int((now or time.time()) + 86_400)
        neg = ts.notna() & (ts < 0)
        fut = ts.notna() & (ts > limit)
        report.repair("negative_timestamp_cleared", int(neg.sum()))
        report.repair("future_timestamp_cleared", int(fut.sum()))
        inter.loc[neg | fut, "timestamp"] = pd.NA
        # the same (user, product, kind) twice: keep one row, prefer the latest with most information
        before = len(inter)
        inter = inter.drop_duplicates()
        report.merge("duplicate_interaction_row", before - len(inter))
        key = ["user_id", "product_id", "kind"]
        dup = inter.duplicated(key, keep=False)
        if dup.any():
            n_dup = int(inter.duplicated(key).sum())
            inter = (
                inter.assign(_ts=inter["timestamp"].fillna(-1))
                .sort_values(["user_id", "product_id", "kind", "_ts"], kind="stable")
                .drop(columns="_ts")
            )
            inter = inter.groupby(key, sort=False, as_index=False).last()
            report.merge("duplicate_user_product_pair", n_dup)
        # products referenced by interactions but absent from the product table
        known = _distinct(t["products"]["product_id"])
        missing = sorted(_distinct(inter["product_id"]) - known)
        if missing:
            report.repair("product_without_metadata", len(missing), where=", ".join(missing[:5]))
            t["products"] = pd.concat(
                [t["products"], _coerce(pd.DataFrame({"product_id": missing}), "products")], ignore_index=True
            )
        users_known = _distinct(t["users"]["user_id"])
        new_users = sorted(_distinct(inter["user_id"]) - users_known)
        if new_users:
            t["users"] = pd.concat(
                [t["users"], _coerce(pd.DataFrame({"user_id": new_users}), "users")], ignore_index=True
            )
        t["interactions"] = inter.reset_index(drop=True)

        # brands referenced by products
        brand_ids = _distinct(t["brands"]["brand_id"])
        ref = t["products"]["brand_id"].dropna()
        new_brands = sorted(_distinct(ref) - brand_ids)
        if new_brands:
            t["brands"] = pd.concat(
                [t["brands"], _coerce(pd.DataFrame({"brand_id": new_brands, "name": new_brands}), "brands")],
                ignore_index=True,
            )

        cats = _distinct(t["categories"]["category_id"])
        parent_bad = t["categories"]["parent_id"].notna() & ~t["categories"]["parent_id"].isin(cats)
        report.repair("dangling_parent_category_cleared", int(parent_bad.sum()))
        t["categories"].loc[parent_bad, "parent_id"] = None
        products = _distinct(t["products"]["product_id"])
        t["product_categories"] = _drop_dangling(
            t["product_categories"], {"product_id": products, "category_id": cats}, "product_categories", report
        )
        t["product_tags"] = _drop_dangling(
            t["product_tags"], {"product_id": products, "tag_id": _distinct(t["tags"]["tag_id"])}, "product_tags",
            report,
        )
        links = t["product_links"]
        bad_kind = ~links["kind"].isin(LINK_KINDS)
        report.skip("unknown_link_kind", int(bad_kind.sum()))
        t["product_links"] = _drop_dangling(
            links[~bad_kind], {"src_id": products, "dst_id": products}, "product_links", report
        )
        tri = t["triples"]
        tri = tri.assign(kind=tri["kind"].fillna("product"))
        bad_kind = ~tri["kind"].isin(TRIPLE_HEAD_KINDS) | tri["relation"].isna()
        report.skip("malformed_triple", int(bad_kind.sum()))
        tri = tri[~bad_kind]
        ents = _distinct(t["entities"]["entity_id"])
        is_prod = tri["kind"] == "product"
        dangling = (
            (is_prod & ~tri["head_id"].isin(products))
            | (~is_prod & ~tri["head_id"].isin(ents))
            | ~tri["tail_id"].isin(ents)
        )
        report.skip("dangling_triple", int(dangling.sum()))
        t["triples"] = tri[~dangling]
        for name in ("product_categories", "product_tags", "product_links", "triples"):
            before = len(t[name])
            t[name] = t[name].drop_duplicates().reset_index(drop=True)
            report.merge(f"duplicate_{name}_row", before - len(t[name]))
        t = {name: _canonical(df, name) for name, df in t.items()}
        return cls(t, report, source, synthetic)

    # ------------------------------------------------------------------ summaries
    def counts(self) -> dict[str, dict[str, int]]:
        """Node and edge counts per schema type."""
        from kgrec.data.schema import load_schema

        schema = load_schema()
        nodes = {spec.name: int(len(self.tables[spec.table])) for spec in schema.nodes.values()}
        edges = {spec.name: int(len(self.edge_table(spec.name))) for spec in schema.stored_edges()}
        inter = self.interactions
        return {
            "nodes": nodes,
            "edges": edges,
            "interactions_by_kind": {k: int(v) for k, v in inter["kind"].value_counts().sort_index().items()},
            "reviewed_products": {
                "count": int(inter.loc[inter["text"].notna() | inter["rating"].notna(), "product_id"].nunique())
            },
            "interacted_products": {"count": int(inter["product_id"].nunique())},
        }

    def edge_table(self, relation: str) -> pd.DataFrame:
        """Rows of the schema edge ``relation`` as a (src, dst, ...) table."""
        from kgrec.data.schema import load_schema

        spec = load_schema().edges[relation]
        df = self.tables[spec.table]
        if spec.where_kind is not None:
            df = df[df["kind"] == spec.where_kind]
        if spec.table == "triples":
            df = df[df["kind"] == spec.src]
        df = df[df[spec.src_col].notna() & df[spec.dst_col].notna()]
        return df

    def without_products(self, product_ids: Iterable[str]) -> Catalog:
        """A copy with these products and every row that mentions them removed (cold-start hold-out)."""
        drop = set(product_ids)
        t = dict(self.tables)
        t["products"] = t["products"][~t["products"]["product_id"].isin(drop)]
        for name in ("product_categories", "product_tags", "interactions"):
            t[name] = t[name][~t[name]["product_id"].isin(drop)]
        t["product_links"] = t["product_links"][
            ~(t["product_links"]["src_id"].isin(drop) | t["product_links"]["dst_id"].isin(drop))
        ]
        t["triples"] = t["triples"][~(t["triples"]["head_id"].isin(drop) | t["triples"]["tail_id"].isin(drop))]
        t = {k: v.reset_index(drop=True) for k, v in t.items()}
        return Catalog(t, self.report, self.source, self.synthetic)

    def time_prefix(self, share: float) -> Catalog:
        """The shop as it was when ``share`` of its timestamped interactions had happened: later
        interactions are removed, and so are users and products that had none yet."""
        inter = self.interactions
        ts = inter["timestamp"].astype("float64")
        if ts.isna().all():
            raise ValueError("time_prefix needs interaction timestamps")
        cut = ts.quantile(share)
        early = inter[ts <= cut]
        late_only = set(self.products["product_id"]) - set(early["product_id"])
        out = self.without_products(late_only)
        t = dict(out.tables)
        t["interactions"] = early.reset_index(drop=True)
        t["users"] = t["users"][t["users"]["user_id"].isin(set(early["user_id"]))].reset_index(drop=True)
        return Catalog(t, self.report, self.source, self.synthetic)

    def steps_back(self, steps: int, strategy: str = "loo", seed: int = 0) -> Catalog:
        """The shop ``steps`` held-out pairs earlier: the test pairs of ``strategy``'s split removed with
        every row of them, ``steps`` times over. One step back, the validation pairs of this catalog are
        the test pairs of the result and the pairs before them its validation pairs, so a study on it
        never reads a test pair; two steps back its test and validation pairs are both training pairs of
        this catalog's split (a user left with fewer than 3 pairs keeps the rest for training)."""
        from kgrec.data.split import WITH_VAL, split_interactions

        out = self
        for _ in range(steps):
            inter = out.interactions
            kept = split_interactions(inter, strategy + WITH_VAL, seed=seed).train_rows  # all but the test pairs'
            out = Catalog({**out.tables, "interactions": inter.iloc[kept].reset_index(drop=True)}, self.report,
                          self.source, self.synthetic)
        return out

    # ------------------------------------------------------------------ a run's own copy
    def save(self, folder: str | Path) -> Path:
        """Write every canonical table as Parquet plus ``catalog.json`` (source, synthetic flag, load
        report): the copy a run folder keeps, read back exactly by :meth:`read`."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df.to_parquet(out / f"{name}.parquet", index=False)
        meta = {
            "format": "kgrec-catalog",
            "version": 1,
            "source": self.source,
            "synthetic": self.synthetic,
            "report": self.report.to_dict(),
        }
        (out / "catalog.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        return out

    @classmethod
    def read(cls, folder: str | Path) -> Catalog:
        """The catalog :meth:`save` wrote (already validated: read as is)."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
            tables = {name: _coerce(pd.read_parquet(folder / f"{name}.parquet"), name) for name in TABLE_COLUMNS}
        except (OSError, ValueError) as exc:
            raise CatalogError(f"{folder}: the run's catalog copy cannot be read ({exc}); retrain the run") from None
        rep = meta.get("report", {})
        report = LoadReport(
            Counter(rep.get("rows_in", {})),
            Counter(rep.get("skipped", {})),
            Counter(rep.get("merged", {})),
            Counter(rep.get("repaired", {})),
            dict(rep.get("examples", {})),
            dict(rep.get("encodings", {})),
        )
        return cls(tables, report, meta.get("source", ""), bool(meta.get("synthetic", False)))

    # ------------------------------------------------------------------ export
    def write_generic(self, out_dir: str | Path) -> Path:
        """Write every canonical table as ``<table>.csv`` (the generic export format) plus a manifest."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df.to_csv(out / f"{name}.csv", index=False, encoding="utf-8")
        (out / "kgrec_catalog.json").write_text(
            json.dumps(
                {"format": "kgrec-generic", "version": 1, "synthetic": self.synthetic, "source": self.source}, indent=2
            ),
            encoding="utf-8",
        )
        return out

    def equals(self, other: Catalog) -> bool:
        """Same tables, row order ignored."""
        for name in TABLE_COLUMNS:
            a, b = _canonical_order(self.tables[name]), _canonical_order(other.tables[name])
            if not a.equals(b):
                return False
        return True


def _canonical_order(df: pd.DataFrame) -> pd.DataFrame:
    key = df.astype(str)
    order = key.sort_values(list(df.columns), kind="stable").index
    return df.loc[order].reset_index(drop=True)


def _dedupe_nodes(df: pd.DataFrame, key: str, name: str, report: LoadReport) -> pd.DataFrame:
    missing = df[key].isna()
    report.skip(f"{name}_missing_id", int(missing.sum()))
    df = df[~missing]
    before = len(df)
    df = df.drop_duplicates()
    report.merge(f"duplicate_{name}_row", before - len(df))
    conflict = df.duplicated(key)
    if conflict.any():
        ids = df.loc[conflict, key].head(5).tolist()
        report.skip(f"conflicting_duplicate_{name}_id", int(conflict.sum()), where=", ".join(ids))
        df = df[~conflict]
    return df.reset_index(drop=True)


def _drop_dangling(df: pd.DataFrame, refs: dict[str, set], name: str, report: LoadReport) -> pd.DataFrame:
    ok = pd.Series(True, index=df.index)
    for col, known in refs.items():
        ok &= df[col].isin(known)
    report.skip(f"dangling_{name}_reference", int((~ok).sum()))
    return df[ok].reset_index(drop=True)
