"""Bad input gets a specific error (CatalogError naming the file and what to do) or a counted skip."""
from __future__ import annotations

import gzip
import json
import time

import pandas as pd
import pytest

from conftest import INTERACTIONS, PRODUCTS, run_cli, write
from kgrec.data.catalog import MAX_TEXT_CHARS, CatalogError, to_float
from kgrec.loaders import load_catalog


@pytest.fixture()
def shop(tmp_path):
    write(tmp_path, "products.csv", PRODUCTS)
    write(tmp_path, "interactions.csv", INTERACTIONS)
    return tmp_path


def test_clean_shop_loads(shop):
    cat = load_catalog(shop)
    assert len(cat.products) == 3 and len(cat.interactions) == 3
    assert cat.products.loc[0, "description"] == "A red mug & saucer"
    assert set(cat.categories["category_id"]) == {"Home", "Home > Kitchen", "Home > Kitchen > Mugs"}
    assert sum(cat.report.skipped.values()) == 0


def test_truncated_gzip(tmp_path):
    data = gzip.compress(INTERACTIONS.encode() * 200)
    (tmp_path / "interactions.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CatalogError, match="truncated or corrupt"):
        load_catalog(tmp_path)


def test_non_utf8_bytes_are_repaired_and_counted(shop):
    write(shop, "products.csv", PRODUCTS.encode() + b"p4,Caf\xe9 Mug,latin-1 bytes,5,Acme,Home,\n")
    cat = load_catalog(shop)
    assert cat.report.repaired["invalid_utf8_repaired"] == 1
    assert "products.csv:5" in cat.report.examples["invalid_utf8_repaired"]
    assert cat.products.set_index("product_id").loc["p4", "title"] == "Caf\ufffd Mug"


def test_missing_required_column(shop):
    write(shop, "interactions.csv", "customer,sku_code\nu1,p1\n")
    with pytest.raises(CatalogError, match=r"interactions.csv: missing required column\(s\) \['product_id'\]"):
        load_catalog(shop)


def test_mapping_renames_columns(shop):
    write(shop, "interactions.csv", "customer,sku_code\nu1,p1\n")
    write(shop, "kgrec_mapping.json", json.dumps({"tables": {"interactions": {"columns": {"sku_code": "product_id"}}}}))
    assert len(load_catalog(shop).interactions) == 1


def test_unknown_mapping_key(shop):
    write(shop, "kgrec_mapping.json", json.dumps({"tabels": {}}))
    with pytest.raises(CatalogError, match="unknown keys"):
        load_catalog(shop)


def test_mapping_names_missing_file(shop):
    write(shop, "kgrec_mapping.json", json.dumps({"tables": {"products": {"file": "nope.csv"}}}))
    with pytest.raises(CatalogError, match="nope.csv: named in the mapping"):
        load_catalog(shop)


def test_duplicate_ids_with_conflicting_values(shop):
    write(shop, "products.csv", PRODUCTS + "p1,Green Mug,other,1,Acme,Home,\n")
    cat = load_catalog(shop)
    assert cat.report.skipped["conflicting_duplicate_products_id"] == 1
    assert cat.products.set_index("product_id").loc["p1", "title"] == "Red Mug"  # first row wins


def test_identical_duplicate_rows_are_merged(shop):
    write(shop, "interactions.csv", INTERACTIONS + "u1,p1,purchase,,1600000000\n")
    cat = load_catalog(shop)
    assert cat.report.merged["duplicate_interaction_row"] == 1 and len(cat.interactions) == 3


def test_dangling_product_reference_creates_product_without_metadata(shop):
    write(shop, "interactions.csv", INTERACTIONS + "u3,p999,purchase,,1600000300\n")
    cat = load_catalog(shop)
    assert cat.report.repaired["product_without_metadata"] == 1
    assert "p999" in set(cat.products["product_id"])


def test_dangling_tag_and_link_references_are_counted(shop):
    write(shop, "product_tags.csv", "product_id,tag_id\np1,nosuchtag\np2,gift\n")
    write(shop, "tags.csv", "tag_id,name\ngift,gift\n")
    write(shop, "product_links.csv", "src_id,dst_id,kind\np1,p2,also_bought\np1,zzz,also_viewed\n")
    cat = load_catalog(shop)
    assert cat.report.skipped["dangling_product_tags_reference"] == 1
    assert cat.report.skipped["dangling_product_links_reference"] == 1
    assert len(cat.product_links) == 1


def test_nan_and_out_of_range_ratings(shop):
    write(shop, "interactions.csv", INTERACTIONS + "u3,p1,rating,NaN,1600000300\nu3,p2,rating,11,1600000400\n"
                                                    "u3,p3,rating,abc,1600000500\nu2,p3,rating,  ,1600000600\n")
    cat = load_catalog(shop)
    assert cat.report.repaired["rating_out_of_range_cleared"] == 1
    assert cat.report.repaired["unparseable_rating_cleared"] == 1  # abc; spaces are no value, like NaN
    assert cat.report.repaired["nan_rating_cleared"] == 2
    assert cat.interactions["rating"].isna().sum() == 2 + 4  # two purchases + NaN + 11 + abc + spaces


def test_negative_and_future_timestamps(shop):
    future = int(time.time()) + 10 * 365 * 86400
    write(shop, "interactions.csv", INTERACTIONS + f"u3,p1,purchase,,-5\nu3,p2,purchase,,{future}\n")
    cat = load_catalog(shop)
    assert cat.report.repaired["negative_timestamp_cleared"] == 1
    assert cat.report.repaired["future_timestamp_cleared"] == 1


def test_iso_and_millisecond_timestamps(shop):
    write(shop, "interactions.csv", "user_id,product_id,timestamp\nu1,p1,2021-03-04T05:06:07Z\n"
                                    "u1,p2,1600000000123\nu1,p3,not a date\n")
    cat = load_catalog(shop)
    ts = cat.interactions.set_index("product_id")["timestamp"]
    assert ts["p1"] == 1614834367 and ts["p2"] == 1600000000 and pd.isna(ts["p3"])
    assert cat.report.repaired["unparseable_timestamp_cleared"] == 1


def test_empty_file(shop):
    write(shop, "interactions.csv", "")
    with pytest.raises(CatalogError, match="interactions.csv: the file is empty"):
        load_catalog(shop)


def test_header_only_file_gives_empty_table(shop):
    write(shop, "products.csv", "product_id,title\n")
    cat = load_catalog(shop)
    assert cat.report.repaired["product_without_metadata"] == 3


def test_huge_review_text_is_truncated(shop):
    big = "great " * (10 * 1024 * 1024 // 6)
    write(shop, "reviews.jsonl", json.dumps({"user_id": "u9", "product_id": "p1", "rating": 5, "text": big}) + "\n")
    cat = load_catalog(shop)
    text = cat.interactions.set_index("user_id").loc["u9", "text"]
    assert len(text) == MAX_TEXT_CHARS and cat.report.repaired["text_truncated"] == 1


def test_malformed_csv_row(shop):
    write(shop, "interactions.csv", INTERACTIONS + "u4,p1,purchase\nu5,p2,purchase,,1,extra,fields\n")
    cat = load_catalog(shop)
    assert cat.report.skipped["malformed_csv_row"] == 2
    assert cat.report.rows_in["interactions.csv"] == 5


def test_malformed_json_line(tmp_path):
    write(tmp_path, "interactions.jsonl", '{"user_id": "u1", "product_id": "p1"}\n{"user_id": broken\n[1, 2]\n')
    cat = load_catalog(tmp_path)
    assert cat.report.skipped["malformed_json_line"] == 2 and len(cat.interactions) == 1


def test_utf8_bom_is_dropped(shop):
    write(shop, "interactions.csv", b"\xef\xbb\xbf" + INTERACTIONS.encode())
    assert len(load_catalog(shop).interactions) == 3


def test_duplicate_header_column(shop):
    write(shop, "interactions.csv", "user_id,product_id,user_id\nu1,p1,u2\n")
    with pytest.raises(CatalogError, match="repeats a column"):
        load_catalog(shop)


def test_unknown_interaction_kind_and_missing_ids(shop):
    write(shop, "interactions.csv", INTERACTIONS + "u3,p1,teleport,,1\n,p1,purchase,,1\n")
    cat = load_catalog(shop)
    assert cat.report.skipped["unknown_interaction_kind"] == 1
    assert cat.report.skipped["interaction_missing_id"] == 1


def test_corrupt_parquet(tmp_path):
    write(tmp_path, "interactions.parquet", b"PAR1 this is not parquet")
    with pytest.raises(CatalogError, match="not a readable Parquet file"):
        load_catalog(tmp_path)


def test_no_interactions_file(tmp_path):
    write(tmp_path, "products.csv", PRODUCTS)
    with pytest.raises(CatalogError, match="no interactions or reviews file"):
        load_catalog(tmp_path)


def test_missing_source_folder(tmp_path):
    with pytest.raises(CatalogError, match="no such file or folder"):
        load_catalog(tmp_path / "missing")


def test_kg_triples_kgat_style(shop):
    write(shop, "triples.tsv", "head\trelation\ttail\np1\tmade_of\tceramic\nceramic\tsubclass_of\tmaterial\n"
                               "p2\tmade_of\n")
    cat = load_catalog(shop)
    counts = cat.counts()["edges"]
    assert counts["related"] == 1 and cat.report.skipped["malformed_csv_row"] == 1
    assert set(cat.entities["entity_id"]) == {"ceramic", "material"}


def test_amazon_dirty_lines(tmp_path):
    review = {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1500000000,
              "reviewText": "Great &amp; <i>fun</i>", "summary": "Five stars"}
    lines = [json.dumps(review), json.dumps(review), "{not json", json.dumps({**review, "asin": "B2", "overall": 1.0})]
    write(tmp_path, "Toys_5.json.gz", "\n".join(lines) + "\n")
    meta = {"asin": "B1", "title": '<span class="a-size-medium"', "description": ["A fun toy. Second sentence."],
            "category": ["Toys &amp; Games", "Puzzles"], "price": "$12.99", "brand": "Acme",
            "also_buy": ["B2", "B404"]}
    write(tmp_path, "meta_Toys.json.gz", "\n".join([json.dumps(meta), json.dumps(meta)]) + "\n")
    cat = load_catalog(tmp_path)
    rep = cat.report
    assert rep.merged["duplicate_review_line"] == 1 and rep.merged["duplicate_metadata_line"] == 1
    assert rep.skipped["malformed_json_line"] == 1 and rep.repaired["product_without_metadata"] == 1
    assert rep.skipped["dangling_product_links_reference"] == 1
    p = cat.products.set_index("product_id").loc["B1"]
    assert p["title"] == "A fun toy." and p["price"] == 12.99
    assert "Toys & Games > Puzzles" in set(cat.categories["category_id"])
    assert cat.interactions.set_index("product_id").loc["B1", "text"] == "Five stars. Great & fun"


def test_cli_reports_error_without_traceback(tmp_path):
    write(tmp_path, "interactions.csv", "")
    out = run_cli("inspect", str(tmp_path))
    assert out.returncode == 2
    assert "the file is empty" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("values", [
    ["1", "2.5", "1e3", "-4", None, "nan", "inf"],  # plain numbers: Arrow parses the column
    ["1", " 2", "abc", None, "0x10", "1,5", "７"],  # anything else: pandas' parser for the column
])
def test_numbers_from_arrow_text_parse_as_pandas_does(values):
    arrow = pd.Series(values, dtype=pd.StringDtype("pyarrow"))
    expected = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64")
    pd.testing.assert_series_equal(to_float(arrow), expected)
    pd.testing.assert_series_equal(to_float(pd.Series(values, dtype=object)), expected)
