"""Recommend with reasons, cold start (new products, new users) and the documented --json schemas."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, validate


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_demo):
    """A converged R-GCN on the small demo (the shared 5-epoch demo_run is too weak for semantics)."""
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    out = tmp_path_factory.mktemp("trained-run")
    run_training(TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=32, out=str(out),
                             baselines=(), optim=OptimConfig(epochs=60, patience=10, batch_size=512)), small_demo)
    return out


def _cli_json(*args) -> dict:
    out = run_cli(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def check_commands(run_dir, user: str, query: str, explain: bool = True) -> dict:
    """recommend/search/profile (and explain) on one run: each --json validates against its schema."""
    rec = _cli_json("recommend", str(run_dir), "--user", user, "-k", "5")
    validate("recommend", rec)
    assert [r["rank"] for r in rec["recommendations"]] == [1, 2, 3, 4, 5]
    assert all(r["reason"].startswith("because you chose") for r in rec["recommendations"])
    validate("search", _cli_json("search", str(run_dir), query, "--user", user))
    validate("profile", _cli_json("profile", str(run_dir), "--user", user))
    if explain:
        validate("explain", _cli_json("explain", str(run_dir), "--user", user, "--product",
                                      rec["recommendations"][0]["product_id"], "--top", "2"))
    return rec


@pytest.mark.slow
def test_commands_on_demo_match_their_json_schemas(demo_run):
    from kgrec import Recommender

    user = Recommender.load(demo_run).user_ids[3]
    check_commands(demo_run, user, "camera")
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate("recommend", {"user_id": user, "model": "rgcn", "recommendations": [{"rank": 0}]})


def test_reasons_are_true_statements_about_the_catalog(demo_run, small_demo):
    """Each reason names a training product of the user, and what it claims they share holds."""
    import re

    from kgrec import Recommender

    rec = Recommender.load(demo_run)
    prods = small_demo.products.set_index("product_id")
    cats = (
        small_demo.product_categories.merge(small_demo.categories, on="category_id")
        .groupby("product_id")["name"]
        .agg(set)
    )
    brand = dict(zip(small_demo.brands["brand_id"], small_demo.brands["name"]))
    tags = small_demo.product_tags.merge(small_demo.tags, on="tag_id").groupby("product_id")["name"].agg(set)
    train_users = {}
    for u, i in zip(rec.train.users.tolist(), rec.train.items.tolist()):
        train_users.setdefault(rec.product_ids[i], set()).add(u)
    kinds = set()
    for u in range(6):
        history = {rec.product_ids[i] for i in rec.train.of(u).tolist()}
        for row in rec.recommend(rec.user_ids[u], k=10):
            m = re.fullmatch(r"because you chose “(.+)” \((.+)\)", row["reason"])
            assert m, row["reason"]
            chosen = [p for p in history if prods.loc[p, "title"][:50] == m.group(1)]
            assert chosen, row["reason"]
            p, claim = row["product_id"], m.group(2)
            if claim.startswith("same category: "):
                assert any(claim[15:] in cats.get(c, set()) and claim[15:] in cats.get(p, set()) for c in chosen)
            elif claim.startswith("same brand: "):
                assert any(
                    brand.get(prods.loc[c, "brand_id"]) == claim[12:] == brand.get(prods.loc[p, "brand_id"])
                    for c in chosen
                )
            elif claim.startswith("same tag: "):
                assert any(claim[10:] in tags.get(c, set()) and claim[10:] in tags.get(p, set()) for c in chosen)
            elif "chose both" in claim:
                n = int(claim.split()[0])
                assert any(len(train_users.get(c, set()) & train_users.get(p, set())) == n for c in chosen)
            else:
                assert claim == "close to it in the model's embedding space"
            kinds.add(claim.split(":")[0] if ":" in claim else claim.split()[-1])
    assert len(kinds) >= 2  # the reasons are not one canned phrase


def test_new_product_is_scored_from_text_and_category_without_retraining(trained_run, small_demo):
    """A new product in category C scores higher for users who chose C than for the others."""
    from kgrec import Recommender
    from kgrec.serve.coldstart import ColdStart

    rec = Recommender.load(trained_run)
    cs = ColdStart.load(trained_run)
    cat = small_demo.product_categories.set_index("product_id")["category_id"]
    category = "Electronics > Cameras"
    new = {
        "product_id": "NEW-1",
        "title": "Compact mirrorless camera with a 24 mm lens",
        "description": "A small camera for travel photos.",
        "category_ids": [category],
    }
    scores = cs.score_new_products(rec.user_ids, [new])[:, 0]
    assert scores.shape == (len(rec.user_ids),) and np.isfinite(scores).all()
    inter = small_demo.interactions
    fans = set(inter.loc[inter["product_id"].map(cat) == category, "user_id"])
    is_fan = np.array([u in fans for u in rec.user_ids])
    assert 0 < is_fan.sum() < len(is_fan)
    assert scores[is_fan].mean() > scores[~is_fan].mean()
    assert cs.ignored == {}


def test_new_user_from_a_few_products(trained_run, small_demo):
    from kgrec.serve.coldstart import ColdStart

    cat = small_demo.product_categories.set_index("product_id")["category_id"]
    cameras = [p for p in cat.index if cat[p] == "Electronics > Cameras"][:3]
    rows = ColdStart.load(trained_run).recommend_new_user(cameras, k=10)
    assert len(rows) == 10 and not {r["product_id"] for r in rows} & set(cameras)
    share = np.mean([cat.get(r["product_id"]) == "Electronics > Cameras" for r in rows])
    base = np.mean(cat == "Electronics > Cameras")
    assert share > base
    out = _cli_json("recommend", str(trained_run), "--products", ",".join(cameras), "-k", "3")
    validate("recommend", out)
    assert out["user_id"] is None and len(out["recommendations"]) == 3


@pytest.mark.slow
def test_new_products_file_and_bad_input(demo_run, tmp_path):
    from kgrec import Recommender

    user = Recommender.load(demo_run).user_ids[1]
    f = tmp_path / "new.jsonl"
    f.write_text(
        json.dumps({"product_id": "N1", "title": "yoga mat", "category_ids": ["Sports > Yoga"]})
        + "\n"
        + json.dumps({"product_id": "N2", "title": "espresso machine"})
        + "\n"
    )
    out = _cli_json("recommend", str(demo_run), "--user", user, "--new-products", str(f))
    validate("recommend", out)
    assert {r["product_id"] for r in out["recommendations"]} == {"N1", "N2"}
    (tmp_path / "bad.jsonl").write_text('{"title": "no id"}\n')
    bad = run_cli("recommend", str(demo_run), "--user", user, "--new-products", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 2 and "needs a product_id" in bad.stderr
    both = run_cli("recommend", str(demo_run), "--user", user, "--products", "x")
    assert both.returncode == 2 and "exactly one of --user" in both.stderr
    unknown = run_cli("recommend", str(demo_run), "--products", "no-such-product")
    assert unknown.returncode == 2 and "at least one known product id" in unknown.stderr


def test_cold_start_evaluation_beats_random(tmp_path, small_demo):
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.serve.coldstart import evaluate_cold_start

    cfg = TrainConfig(
        data="demo",
        scale=0.1,
        seed=0,
        quiet=True,
        device="cpu",
        hidden=32,
        out=str(tmp_path / "cold"),
        optim=OptimConfig(epochs=40, batch_size=512, patience=10),
    )
    # the small demo has ~120 products: hold out a quarter so that there are more candidates than k
    res = evaluate_cold_start(cfg, share=0.25, k=10, catalog=small_demo)
    assert res["held_out_products"] == int(0.25 * small_demo.interactions["product_id"].nunique()) > 10
    assert res["users_evaluated"] > 20
    r = res["results"]
    assert r["rgcn"]["recall@10"] > r["random"]["recall@10"]
    assert r["text_knn"]["recall@10"] > r["random"]["recall@10"]


@pytest.mark.slow
def test_commands_on_real_amazon_data(tmp_path, magazine):
    """recommend/search/profile/explain on a run over ../shared's Amazon Magazine data (skipped when absent)."""
    from kgrec import Recommender
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    out = tmp_path / "magazine-run"
    run_training(
        TrainConfig(
            data=str(magazine),
            seed=0,
            quiet=True,
            device="cpu",
            hidden=32,
            out=str(out),
            baselines=(),
            optim=OptimConfig(epochs=15, patience=15),
        )
    )
    rec = Recommender.load(out)
    user = rec.user_ids[7]
    result = check_commands(out, user, "science and nature magazine")
    assert {r["product_id"] for r in result["recommendations"]} <= set(rec.product_ids)
    profile = _cli_json("profile", str(out), "--user", user)
    assert profile["rating_tendency"]["count"] > 0 and profile["activity"]["first"] is not None
