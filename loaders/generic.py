"""Generic shop exports: one file per table (CSV/TSV, JSON lines or Parquet, optionally gzipped).

Files (all optional except ``interactions`` or ``reviews``), by stem:

- ``products``: product_id, title, description, price, and either ``brand_id`` or a ``brand`` name,
  a ``categories`` path string (``category_separator``, auto-detected among `` > ``, ``|``, ``,``),
  ``tags`` (``tag_separator``, default ``|``)
- ``users``: user_id, name
- ``interactions``: user_id, product_id, kind (view/click/cart/purchase/rating/review; default
  purchase), rating, timestamp (epoch seconds or milliseconds, ISO dates, or a sequence position), text
- ``reviews``: user_id, product_id, rating, timestamp, text (loaded as interactions of kind review)
- ``triples``: head, relation, tail — knowledge-graph triples (KGAT/KGCN style); a head that is a
  product id links that product, any other head or tail is an entity
- the canonical tables written by :meth:`Catalog.write_generic` (categories, brands, tags, entities,
  product_categories, product_tags, product_links), so an export loads back losslessly.

Shops whose columns are named differently add ``kgrec_mapping.json`` to the folder (or pass
``mapping=``)::

    {"tables": {"products": {"file": "items.csv", "columns": {"sku": "product_id", "name": "title"}}},
     "category_separator": " / ", "tag_separator": ";", "rating_range": [1, 5]}
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.data.catalog import (
    TABLE_COLUMNS,
    Catalog,
    CatalogError,
    LoadReport,
    add_category_path,
    clean_text,
    is_missing,
    missing_words,
    slug,
    to_float,
)
from kgrec.loaders._io import ENCODINGS, check_file, check_unique_columns, find_file, read_table, require_columns

ALIASES: dict[str, tuple[str, ...]] = {
    "product_id": ("item_id", "item", "asin", "parent_asin", "sku", "productid", "itemid"),
    "user_id": ("user", "customer_id", "reviewer_id", "reviewerid", "userid", "customer"),
    "timestamp": ("time", "ts", "date", "datetime", "unix_time", "position"),
    "rating": ("score", "stars", "overall"),
    "text": ("review", "review_text", "reviewtext", "body", "comment"),
    "head_id": ("head", "h"),
    "relation": ("rel", "r", "predicate"),
    "tail_id": ("tail", "t", "object"),
    "kind": ("event", "event_type", "action", "type"),
    "sentiment": ("label", "polarity", "sentiment_label"),
}
INPUT_STEMS = ("products", "users", "interactions", "reviews", "triples") + tuple(
    t for t in TABLE_COLUMNS if t not in ("products", "users", "interactions", "triples"))
SEPARATOR_CANDIDATES = (" > ", "|", ">", ",")
KNOWN_MAPPING_KEYS = {"tables", "category_separator", "tag_separator", "rating_range", "encoding"}


def _load_mapping(folder: Path, mapping: str | Path | None) -> dict:
    path = Path(mapping) if mapping else folder / "kgrec_mapping.json"
    if not path.exists():
        if mapping:
            raise CatalogError(f"{path}: mapping file not found")
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the mapping must be a JSON object like {{\"tables\": {{...}}}}, "
                           f"not {type(raw).__name__}")
    unknown = set(raw) - KNOWN_MAPPING_KEYS
    if unknown:
        raise CatalogError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(KNOWN_MAPPING_KEYS)}")
    tables = raw.get("tables", {})
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise CatalogError(f"{path}: 'tables' must map table names to objects with 'file' and/or 'columns'")
    bad_tables = set(tables) - set(INPUT_STEMS)
    if bad_tables:
        raise CatalogError(f"{path}: unknown tables {sorted(bad_tables)}; allowed: {sorted(INPUT_STEMS)}")
    for stem, tconf in tables.items():
        cols = tconf.get("columns", {})
        if not isinstance(cols, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in cols.items()):
            raise CatalogError(f"{path}: tables.{stem}.columns must map your column names to kgrec's (strings)")
        if "file" in tconf and not isinstance(tconf["file"], str):
            raise CatalogError(f"{path}: tables.{stem}.file must be a file name")
    if "encoding" in raw and str(raw["encoding"]).lower() not in ENCODINGS:
        raise CatalogError(f"{path}: unknown encoding {raw['encoding']!r}; choose one of {', '.join(ENCODINGS)}")
    return raw


PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {"title": ("name", "product_name")}


def _rename(df: pd.DataFrame, explicit: dict[str, str], stem: str, path: Path) -> pd.DataFrame:
    """Apply the mapping, lower-case the names and resolve aliases; two columns that end up with one
    name are an error (never a silent merge of their values)."""
    original = [str(c) for c in df.columns]
    df = df.rename(columns=explicit)
    lower = {c: c.strip().lower() for c in df.columns}
    df = df.rename(columns=lower)
    aliases_for = ALIASES | PRODUCT_ALIASES if stem == "products" else ALIASES
    for canonical, aliases in aliases_for.items():
        if canonical in df.columns:
            continue
        for alias in aliases:
            if alias in df.columns:
                df = df.rename(columns={alias: canonical})
                break
    check_unique_columns(df, original, path)
    return df


def parse_timestamps(values: pd.Series, report: LoadReport, where: str) -> pd.Series:
    """Epoch seconds, epoch milliseconds (> 1e11), sequence positions, date strings or datetimes
    (Parquet) → Int64 seconds."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("Int64")
    out = to_float(values)
    infinite = out.notna() & ~np.isfinite(out)
    report.repair("non_finite_timestamp_cleared", int(infinite.sum()), where=where)
    out = out.mask(infinite)
    text = values.notna() & out.isna() & ~infinite
    if text.any():
        parsed = pd.to_datetime(values[text], errors="coerce", utc=True, format="mixed")
        secs = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        out.loc[text] = secs.astype("float64")
        bad = parsed.isna()
        report.repair("unparseable_timestamp_cleared", int(bad.sum()), where=where)
    ms = out > 1e11
    out.loc[ms] = out.loc[ms] // 1000
    return out.round().astype("Int64")


def _detect_separator(paths: pd.Series) -> str:
    sample = paths.dropna().head(5000)
    for sep in SEPARATOR_CANDIDATES:
        if sample.str.contains(sep, regex=False).any():
            return sep
    return " > "


def load_generic(source: str | Path, mapping: str | Path | None = None, encoding: str | None = None,
                 allow_outside: bool = False) -> Catalog:
    """Load a folder of generic export files into a validated catalog.

    ``encoding`` (or the mapping's ``"encoding"``) decodes every text file with it (default: UTF-8, or
    GB18030 when detected); ``allow_outside`` lets the mapping name files outside the folder."""
    folder = Path(source)
    if not folder.is_dir():
        raise CatalogError(f"{folder}: the generic format is a folder of table files "
                           f"(products.csv, interactions.csv, …)")
    conf = _load_mapping(folder, mapping)
    report = LoadReport()
    raw: dict[str, tuple[pd.DataFrame, Path]] = {}
    for stem in INPUT_STEMS:
        tconf = conf.get("tables", {}).get(stem, {})
        path = folder / tconf["file"] if "file" in tconf else find_file(folder, stem)
        if path is None:
            continue
        if not path.exists():
            raise CatalogError(f"{path}: named in the mapping for table {stem!r} but not found")
        check_file(path, folder, allow_outside)
        df = _rename(read_table(path, report, encoding or conf.get("encoding")), tconf.get("columns", {}), stem, path)
        raw[stem] = (df, path)
    if "interactions" not in raw and "reviews" not in raw:
        raise CatalogError(
            f"{folder}: no interactions or reviews file found (expected interactions.csv, "
            f"interactions.jsonl, … or a mapping naming it)"
        )
    lo, hi = conf.get("rating_range", (0, 5))
    tables: dict[str, pd.DataFrame] = {}

    # interactions and reviews
    parts = []
    for stem, default_kind in (("interactions", "purchase"), ("reviews", "review")):
        if stem not in raw:
            continue
        df, path = raw[stem]
        require_columns(df, ("user_id", "product_id"), path)
        df = df.copy()
        if "kind" not in df.columns:
            df["kind"] = default_kind
        if "timestamp" in df.columns:
            df["timestamp"] = parse_timestamps(df["timestamp"], report, path.name)
        if "rating" in df.columns:
            rating = to_float(df["rating"])
            lost = df["rating"][df["rating"].notna() & rating.isna()]  # given, but not a number
            nan_words = int(missing_words(lost).sum())
            report.repair("nan_rating_cleared", nan_words, where=path.name)
            report.repair("unparseable_rating_cleared", len(lost) - nan_words, where=path.name)
            df["rating"] = rating
        parts.append(df)
    tables["interactions"] = pd.concat(parts, ignore_index=True)

    if "products" in raw:
        prod, path = raw["products"]
        require_columns(prod, ("product_id",), path)
        prod = prod.copy()
        if "brand_id" not in prod.columns and "brand" in prod.columns:
            names = [clean_text(v) for v in prod["brand"]]
            ids = [slug(n) if n else None for n in names]
            prod["brand_id"] = pd.Series(ids, index=prod.index, dtype=object)
            tables["brands"] = (
                pd.DataFrame({"brand_id": ids, "name": names}, dtype=object).dropna().drop_duplicates("brand_id")
            )
        cat_col = next((c for c in ("categories", "category", "category_path") if c in prod.columns), None)
        if cat_col is not None and "categories" not in raw:
            sep = conf.get("category_separator") or _detect_separator(prod[cat_col].dropna().astype(str))
            cats: dict[str, dict] = {}
            pc = []
            for pid, path_text in zip(prod["product_id"], prod[cat_col]):
                names_ = (
                    [n for n in (clean_text(x) for x in str(path_text).split(sep)) if n]
                    if not is_missing(path_text)
                    else []
                )
                leaf = add_category_path(cats, names_)
                if leaf is not None:
                    pc.append({"product_id": pid, "category_id": leaf})
            tables["categories"] = pd.DataFrame(list(cats.values()), columns=list(TABLE_COLUMNS["categories"]))
            tables["product_categories"] = pd.DataFrame(pc, columns=list(TABLE_COLUMNS["product_categories"]))
        if "tags" in prod.columns and "product_tags" not in raw:
            sep = conf.get("tag_separator", "|")
            pt = [
                (pid, slug(tag), tag)
                for pid, tags in zip(prod["product_id"], prod["tags"])
                if not is_missing(tags)
                for tag in (clean_text(x) for x in str(tags).split(sep))
                if tag
            ]
            tables["product_tags"] = pd.DataFrame([(p, t) for p, t, _ in pt], columns=["product_id", "tag_id"])
            tables["tags"] = pd.DataFrame([(t, n) for _, t, n in pt], columns=["tag_id", "name"]).drop_duplicates(
                "tag_id"
            )
        tables["products"] = prod

    if "triples" in raw:
        tri, path = raw["triples"]
        require_columns(tri, ("head_id", "relation", "tail_id"), path)
        products = (
            set(tables["products"]["product_id"]) if "products" in tables else set(tables["interactions"]["product_id"])
        )
        tri = tri.copy()
        if "kind" not in tri.columns:
            tri["kind"] = np.where(tri["head_id"].isin(products), "product", "entity")
        tables["triples"] = tri
        if "entities" not in raw:
            ent_ids = pd.concat([tri.loc[tri["kind"] == "entity", "head_id"], tri["tail_id"]]).dropna().unique()
            tables["entities"] = pd.DataFrame({"entity_id": ent_ids, "name": ent_ids})

    for stem in INPUT_STEMS:
        if stem in raw and stem not in ("interactions", "reviews", "products", "triples"):
            df, path = raw[stem]
            key = TABLE_COLUMNS[stem][0]
            require_columns(df, (key,), path)
            if stem in tables:  # an explicit table wins over one derived from product columns
                report.skip(f"{stem}_from_product_columns_ignored", len(tables[stem]), where=path.name)
            tables[stem] = df
    return Catalog.from_tables(tables, report, source=str(folder), rating_range=(float(lo), float(hi)))
