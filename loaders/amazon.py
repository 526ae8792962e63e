"""Amazon review data: the 2018 layout (``*_5.json[.gz]`` + ``meta_*.json[.gz]``, ``asin``) and the
2023 layout (``*.jsonl[.gz]`` + ``meta_*.jsonl[.gz]``, ``parent_asin``).

Real files are dirty; every repair is counted in the load report:
exact duplicate lines, duplicate (user, product) pairs, titles that are HTML fragments (the title then
falls back to the description's first sentence or the brand), reviewed items without metadata (kept
as products without text), empty or junk prices, HTML entities in category paths, also_buy/also_view
targets that are not in the metadata (dropped, counted).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from kgrec.data.catalog import Catalog, CatalogError, LoadReport, add_category_path, clean_text, slug
from kgrec.loaders._io import read_json_lines

_PRICE_RE = re.compile(r"^\$?\s*([0-9]+(?:[.,][0-9]{1,2})?)$")


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    if folder.is_file():
        folder = folder.parent
    files = sorted(p for p in folder.iterdir() if p.is_file() and re.search(r"\.jsonl?(\.gz)?$", p.name))
    meta = [p for p in files if p.name.startswith("meta_")]
    reviews = [p for p in files if not p.name.startswith("meta_")]
    if not reviews:
        raise CatalogError(f"{folder}: no review file (*.json[.gz] or *.jsonl[.gz] besides meta_*) found")
    return reviews, meta


def _number(value: Any) -> float | None:
    """A JSON number as float (``Infinity``/``NaN`` stay floats: the catalog clears them, counted);
    anything else (text, lists) as None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _price(value: Any, report: LoadReport, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _PRICE_RE.match(str(value).strip())
    if m:
        return float(m.group(1).replace(",", "."))
    report.repair("unparseable_price_cleared", where=where)
    return None


def _title(meta: dict, description: str | None, brand: str | None, report: LoadReport, where: str) -> str | None:
    raw = meta.get("title")
    title = clean_text(raw)
    if title and not str(raw).lstrip().startswith("<"):
        return title
    if raw:
        report.repair("html_title_replaced", where=where)
    if description:
        first = re.split(r"(?<=[.!?])\s", description, maxsplit=1)[0]
        return first[:200]
    return brand


def load_amazon(source: str | Path) -> Catalog:
    """Load an Amazon review-data folder (2018 or 2023 layout) into a validated catalog."""
    folder = Path(source)
    report = LoadReport()
    review_files, meta_files = _files(folder)

    inter_rows: list[dict] = []
    users: dict[str, str | None] = {}
    for path in review_files:
        seen: set[str] = set()
        for number, obj in read_json_lines(path, report):
            where = f"{path.name}:{number}"
            key = repr(sorted(obj.items(), key=lambda kv: kv[0]))
            if key in seen:
                report.merge("duplicate_review_line", where=where)
                continue
            seen.add(key)
            user = obj.get("reviewerID") or obj.get("user_id")
            item = obj.get("parent_asin") or obj.get("asin")
            if not user or not item:
                report.skip("review_missing_user_or_product", where=where)
                continue
            ts = obj.get("unixReviewTime")
            if ts is None and obj.get("timestamp") is not None:  # the 2023 layout stores milliseconds
                ms = _number(obj["timestamp"])
                ts = ms / 1000 if ms is not None else obj["timestamp"]  # unparseable: cleared, counted
            rating = obj.get("overall", obj.get("rating"))
            text = clean_text(obj.get("reviewText", obj.get("text")), report, where)
            summary = clean_text(obj.get("summary", obj.get("title")))
            if summary and text:
                text = f"{summary}. {text}"
            inter_rows.append({"user_id": str(user), "product_id": str(item), "kind": "review",
                               "rating": rating, "timestamp": ts, "text": text or summary})
            users.setdefault(str(user), clean_text(obj.get("reviewerName")))

    products: list[dict] = []
    categories: dict[str, dict] = {}
    product_categories: list[dict] = []
    links: list[dict] = []
    meta_seen: dict[str, str] = {}
    for path in meta_files:
        for number, obj in read_json_lines(path, report):
            where = f"{path.name}:{number}"
            item = obj.get("parent_asin") or obj.get("asin")
            if not item:
                report.skip("metadata_missing_asin", where=where)
                continue
            item = str(item)
            key = repr(sorted(obj.items(), key=lambda kv: kv[0]))
            if item in meta_seen:
                if meta_seen[item] == key:
                    report.merge("duplicate_metadata_line", where=where)
                else:
                    report.skip("conflicting_duplicate_metadata", where=where)
                continue
            meta_seen[item] = key
            description = clean_text(obj.get("description"), report, where)
            details = obj.get("details") if isinstance(obj.get("details"), dict) else {}
            brand = clean_text(obj.get("brand") or obj.get("store") or details.get("Publisher:")
                               or details.get("Publisher"))
            products.append(
                {
                    "product_id": item,
                    "title": _title(obj, description, brand, report, where),
                    "description": description,
                    "price": _price(obj.get("price"), report, where),
                    "brand_id": slug(brand) if brand else None,
                    "_brand_name": brand,
                }
            )
            path_names = [clean_text(c) for c in (obj.get("category") or obj.get("categories") or [])]
            path_names = [c for c in path_names if c]
            leaf = add_category_path(categories, path_names)
            if leaf is not None:
                product_categories.append({"product_id": item, "category_id": leaf})
            for field, kind in (("also_buy", "also_bought"), ("also_view", "also_viewed")):
                for other in obj.get(field) or []:
                    links.append({"src_id": item, "dst_id": str(other), "kind": kind})

    prod_df = pd.DataFrame(products, columns=["product_id", "title", "description", "price", "brand_id", "_brand_name"])
    brands = (
        prod_df.dropna(subset=["brand_id"])
        .drop_duplicates("brand_id")
        .rename(columns={"_brand_name": "name"})[["brand_id", "name"]]
    )
    tables = {
        "users": pd.DataFrame({"user_id": list(users), "name": list(users.values())}),
        "products": prod_df.drop(columns="_brand_name"),
        "brands": brands,
        "categories": pd.DataFrame(list(categories.values()), columns=["category_id", "name", "parent_id"]),
        "product_categories": pd.DataFrame(product_categories, columns=["product_id", "category_id"]),
        "product_links": pd.DataFrame(links, columns=["src_id", "dst_id", "kind"]),
        "interactions": pd.DataFrame(
            inter_rows, columns=["user_id", "product_id", "kind", "rating", "timestamp", "text"]
        ),
    }
    return Catalog.from_tables(tables, report, source=str(folder))
