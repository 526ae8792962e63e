"""Counts on the real public datasets match their SOURCE.md, and nothing is lost."""
from __future__ import annotations

import json

from conftest import run_cli
from kgrec.loaders import load_catalog


def test_magazine_counts_and_reconciliation(magazine):
    cat = load_catalog(magazine)
    counts = cat.counts()
    assert counts["nodes"]["user"] == 348
    assert counts["nodes"]["product"] == 2326  # 2,320 with metadata + 6 reviewed without
    assert counts["reviewed_products"]["count"] == 157
    rep = cat.report
    assert rep.rows_in["Magazine_Subscriptions_5.json.gz"] == 2375
    assert rep.rows_in["meta_Magazine_Subscriptions.json.gz"] == 3385
    assert rep.merged["duplicate_review_line"] == 42
    assert rep.merged["duplicate_metadata_line"] == 1065
    assert rep.repaired["product_without_metadata"] == 6
    # every review line is an interaction, or a counted merge
    assert (
        len(cat.interactions) + rep.merged["duplicate_review_line"] + rep.merged["duplicate_user_product_pair"] == 2375
    )
    # 42 exact duplicates + 31 more (user, product) pairs = the 73 duplicate pairs of SOURCE.md
    assert rep.merged["duplicate_review_line"] + rep.merged["duplicate_user_product_pair"] == 73
    assert 2320 + rep.merged["duplicate_metadata_line"] == 3385
    # HTML junk titles were replaced, and no text keeps tags or entities
    assert rep.repaired["html_title_replaced"] > 0
    titles = cat.products["title"].dropna()
    assert not titles.str.contains("<span").any() and not titles.str.contains("&amp;").any()
    assert not cat.categories["name"].str.contains("&amp;").any()


def test_scientific_counts(scientific):
    cat = load_catalog(scientific)
    counts = cat.counts()
    assert counts["nodes"]["user"] == 8317
    assert counts["nodes"]["product"] == 4344
    assert counts["edges"]["interacts"] == 58492
    assert sum(cat.report.skipped.values()) == 0


def test_inspect_json_cli(magazine):
    out = run_cli("inspect", str(magazine), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["nodes"]["user"] == 348 and data["nodes"]["product"] == 2326
    assert data["reviewed_products"]["count"] == 157
    assert data["report"]["merged"]["duplicate_review_line"] == 42


def test_inspect_demo_is_labelled_synthetic():
    out = run_cli("inspect", "demo", "--scale", "0.05")
    assert out.returncode == 0, out.stderr
    assert "SYNTHETIC" in out.stdout
