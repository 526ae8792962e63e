"""Trending: time-decayed popularity with its half-life chosen on validation, served by category."""
from __future__ import annotations

import json

import torch

from conftest import run_cli
from kgrec.data.interactions import UserItems
from kgrec.models.baselines import Trending
from kgrec.train.evaluate import evaluate_ranking


def test_the_half_life_is_chosen_on_validation_and_recent_items_win():
    # items 0-4 were bought by everyone a year ago (24 times each), items 5-9 are bought now (6 times
    # each); validation asks the other half of the users for the recent ones
    n_users, n_items, day = 60, 10, 86_400.0
    u = torch.arange(n_users)
    recent = torch.arange(30)
    users = torch.cat([u, u, recent])
    items = torch.cat([u % 5, (u + 1) % 5, 5 + recent % 5])
    times = torch.cat([torch.zeros(2 * n_users), torch.full((30,), 365 * day)]).double()
    history = UserItems(users, items, n_users, n_items)
    times = history.align(users, items, times)
    later = torch.arange(30, 60)
    val = UserItems(later, 5 + later % 5, n_users, n_items)
    model = Trending(n_users, n_items).fit(history, val, times=times)
    assert model.half_life < float("inf") and len(model.selection) == len(Trending.HALF_LIVES)
    popular = Trending(n_users, n_items, half_life=float("inf")).fit(history, times=times)
    assert popular.counts[:5].min() > popular.counts[5:].max()  # by counts alone the old items win
    assert model.counts[5:].min() > model.counts[:5].max()  # decayed, the recent ones do
    ndcg = evaluate_ranking(model.score_users, val, [history])["ndcg@10"]
    assert ndcg > evaluate_ranking(popular.score_users, val, [history])["ndcg@10"]


def test_trending_cli_by_category(demo_run, small_demo):
    out = run_cli("trending", str(demo_run), "-k", "5", "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert len(body["products"]) == 5 and (body["half_life_days"] is None or body["half_life_days"] > 0)
    top = small_demo.categories.dropna(subset=["parent_id"]).iloc[0]
    out = run_cli("trending", str(demo_run), "--category", str(top["category_id"]), "--json")
    assert out.returncode == 0, out.stderr
    in_cat = set(small_demo.product_categories.loc[small_demo.product_categories["category_id"] ==
                                                   top["category_id"], "product_id"])
    rows = json.loads(out.stdout)["products"]
    assert rows and all(r["product_id"] in in_cat for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    out = run_cli("trending", str(demo_run), "--category", "no such category")
    assert out.returncode == 2 and "unknown category" in out.stderr
