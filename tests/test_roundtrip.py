"""Generic export → load → export is lossless (property-based)."""
from __future__ import annotations

import tempfile

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgrec.data.catalog import Catalog
from kgrec.loaders import load_catalog

ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
              min_size=1, max_size=8)
texts = st.one_of(st.none(), st.text(min_size=0, max_size=40))


@st.composite
def catalogs(draw):
    products = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    users = draw(st.lists(ids, min_size=1, max_size=5, unique=True))
    n = draw(st.integers(1, 12))
    rows = [{"user_id": draw(st.sampled_from(users)), "product_id": draw(st.sampled_from(products)),
             "kind": draw(st.sampled_from(["purchase", "rating", "review", "view"])),
             "rating": draw(st.one_of(st.none(), st.sampled_from([1.0, 2.5, 5.0]))),
             "timestamp": draw(st.one_of(st.none(), st.integers(0, 1_700_000_000))),
             "text": draw(texts)} for _ in range(n)]
    prods = [{"product_id": p, "title": draw(texts), "description": draw(texts),
              "price": draw(st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False))),
              "brand_id": draw(st.one_of(st.none(), st.sampled_from(["b1", "b2"])))} for p in products]
    cats = [
        {"category_id": "c1", "name": "Top", "parent_id": None},
        {"category_id": "c2", "name": "Sub", "parent_id": "c1"},
    ]
    pc = [{"product_id": p, "category_id": draw(st.sampled_from(["c1", "c2"]))} for p in products]
    links = [
        {
            "src_id": draw(st.sampled_from(products)),
            "dst_id": draw(st.sampled_from(products)),
            "kind": draw(st.sampled_from(["also_bought", "also_viewed"])),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    return Catalog.from_tables(
        {
            "products": pd.DataFrame(prods),
            "interactions": pd.DataFrame(rows),
            "categories": pd.DataFrame(cats),
            "product_categories": pd.DataFrame(pc),
            "product_links": pd.DataFrame(links),
            "users": pd.DataFrame({"user_id": users, "name": [draw(texts) for _ in users]}),
        }
    )


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs())
def test_generic_export_roundtrip(catalog):
    with tempfile.TemporaryDirectory() as tmp:
        catalog.write_generic(tmp)
        again = load_catalog(tmp)
        assert sum(again.report.skipped.values()) == 0
        assert again.equals(catalog)
        with tempfile.TemporaryDirectory() as tmp2:
            again.write_generic(tmp2)
            assert load_catalog(tmp2).equals(catalog)
