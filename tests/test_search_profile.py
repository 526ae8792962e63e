"""Personalised search and user profiles on a trained demo run."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


def test_text_search_finds_the_right_category(demo_run, small_demo):
    from kgrec import Recommender
    from kgrec.serve.search import Searcher

    searcher = Searcher(Recommender.load(demo_run), small_demo)
    hits = searcher.search("mirrorless camera and camera lens", k=5, alpha=1.0)
    cat = small_demo.product_categories.set_index("product_id")["category_id"]
    assert sum(cat[h["product_id"]] == "Electronics > Cameras" for h in hits) >= 4


def test_personalised_search_blends_user_preferences(demo_run, small_demo):
    from kgrec import Recommender
    from kgrec.serve.search import Searcher, evaluate_search

    rec = Recommender.load(demo_run)
    searcher = Searcher(rec, small_demo)
    user = rec.user_ids[0]
    text_only = [h["product_id"] for h in searcher.search("gift", k=10, alpha=1.0)]
    personal = [h["product_id"] for h in searcher.search("gift", user_id=user, k=10, alpha=0.5)]
    assert text_only != personal
    result = evaluate_search(searcher)
    assert result["queries"] > 0
    for key in ("recall@20_alpha_0.0", "recall@20_alpha_0.5", "recall@20_alpha_1.0"):
        assert 0.0 <= result[key] <= 1.0


@pytest.mark.slow
def test_search_and_profile_cli(demo_run):
    from kgrec import Recommender

    user = Recommender.load(demo_run).user_ids[2]
    out = run_cli("search", str(demo_run), "yoga mat", "--user", user, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["alpha"] == 0.5 and len(data["results"]) == 10
    bad = run_cli("search", str(demo_run), "x", "--alpha", "2")
    assert bad.returncode == 2 and "--alpha must be between 0 and 1" in bad.stderr
    prof = run_cli("profile", str(demo_run), "--user", user, "--json")
    assert prof.returncode == 0, prof.stderr
    p = json.loads(prof.stdout)
    assert p["user_id"] == user and p["interactions"] > 0
    weights = [r["weight"] for r in p["interests"]["categories"]]
    assert weights == sorted(weights, reverse=True) and sum(weights) <= 1.0 + 1e-9
    unknown = run_cli("profile", str(demo_run), "--user", "nobody")
    assert unknown.returncode == 2 and "unknown user id" in unknown.stderr
