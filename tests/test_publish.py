"""kgrec publish: recommendations with their reasons in a real Neo4j; re-publishing is exact; every
Cypher recipe of the README answers what Recommender says."""
from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_cli

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

RECIPES = re.findall(r"```cypher\n(.*?)```",
                     (REPO / "README.md").read_text(encoding="utf-8").split("## Recommendations in Neo4j", 1)[1]
                     .split("\n## ", 1)[0], flags=re.S)


def _env(config) -> dict:
    return {"NEO4J_URI": config.uri, "NEO4J_USER": config.user, "NEO4J_PASSWORD": config.password}


def _publish(run, config, *args) -> dict:
    out = run_cli("publish", str(run), *args, "--json", env=_env(config))
    assert out.returncode == 0, out.stderr[-3000:]
    assert config.password not in out.stdout + out.stderr
    return json.loads(out.stdout)


def _count(driver, run_id=None) -> int:
    where = "WHERE r.run_id = $run" if run_id else ""
    recs, _, _ = driver.execute_query(f"MATCH ()-[r:RECOMMENDED]->() {where} RETURN count(r) AS n", run=run_id)
    return recs[0]["n"]


def test_publish_republish_and_the_readme_recipes(neo4j_driver, neo4j_config, small_demo, demo_run, tmp_path):
    import shutil

    from kgrec import Recommender
    from kgrec.neo4j.importer import import_catalog

    assert len(RECIPES) == 4, "the README's Neo4j section has four recipes"
    import_catalog(small_demo, neo4j_driver)
    rec = Recommender.load(demo_run)
    first = _publish(demo_run, neo4j_config, "-k", "5")
    n = len(rec.user_ids)
    assert first["users"] == n and first["relationships"] == first["expected"] == 5 * n
    assert _count(neo4j_driver) == 5 * n
    again = _publish(demo_run, neo4j_config, "-k", "5")  # the same run: replaced, no duplicates
    assert again["run_id"] == first["run_id"] and _count(neo4j_driver) == 5 * n

    # recipe 1: what do we recommend to a user and why
    user = rec.user_ids[0]
    expected = rec.recommend(user, k=5)
    rows, _, _ = neo4j_driver.execute_query(RECIPES[0], user=user, run=first["run_id"])
    assert [r["product"] for r in rows] == [e["product_id"] for e in expected]
    assert [r["reason"] for r in rows] == [e["reason"] for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e["score"] for e in expected], rel=1e-5)

    # recipe 2: which users get a product
    product = expected[0]["product_id"]
    want = sorted((r["rank"], u) for u in rec.user_ids for r in rec.recommend(u, k=5, reasons=False)
                  if r["product_id"] == product)
    rows, _, _ = neo4j_driver.execute_query(RECIPES[1], product=product, run=first["run_id"])
    assert [(r["rank"], r["user"]) for r in rows] == want

    # recipe 3: recommendations through a brand, checked against the reasons Recommender gives
    brands = dict(zip(small_demo.brands["brand_id"], small_demo.brands["name"]))
    through: dict[str, list] = {}
    for u in rec.user_ids:
        for row in rec.recommend(u, k=5):
            for bid, name in brands.items():
                if row["reason"].endswith(f"(same brand: {name})"):
                    through.setdefault(bid, []).append((u, row["product_id"]))
    brand, pairs = max(through.items(), key=lambda kv: len(kv[1]))
    rows, _, _ = neo4j_driver.execute_query(RECIPES[2], brand=brand, run=first["run_id"])
    assert sorted((r["user"], r["product"]) for r in rows) == sorted(pairs)
    assert all(r["brand"] == brands[brand] for r in rows)

    # recipe 4: what changed between two runs (a second run: another seed of the same catalog)
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    other = tmp_path / "other"
    run_training(TrainConfig(data="demo", scale=0.1, seed=2, quiet=True, device="cpu", hidden=16, out=str(other),
                             baselines=(), optim=OptimConfig(epochs=5, batch_size=512, patience=5)), small_demo)
    second = _publish(other, neo4j_config, "-k", "5")
    assert second["run_id"] != first["run_id"]
    assert _count(neo4j_driver, first["run_id"]) == _count(neo4j_driver, second["run_id"]) == 5 * n
    old_rec, new_rec = rec, Recommender.load(other)
    want = sorted((u, r["product_id"], r["rank"]) for u in rec.user_ids
                  for r in new_rec.recommend(u, k=5, reasons=False)
                  if r["product_id"] not in {o["product_id"] for o in old_rec.recommend(u, k=5, reasons=False)})
    rows, _, _ = neo4j_driver.execute_query(RECIPES[3], old=first["run_id"], new=second["run_id"])
    assert sorted((r["user"], r["product"], r["rank"]) for r in rows) == want

    # --replace-older keeps only the run just published
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy)
    third = _publish(copy, neo4j_config, "-k", "3", "--users", ",".join(rec.user_ids[:4]), "--replace-older")
    assert third["relationships"] == 12
    recs, _, _ = neo4j_driver.execute_query(
        "MATCH (u:User)-[r:RECOMMENDED]->() WHERE u.user_id IN $users RETURN DISTINCT r.run_id AS run",
        users=rec.user_ids[:4])
    assert [r["run"] for r in recs] == [third["run_id"]]
    assert _count(neo4j_driver) == 12 + 2 * 5 * (n - 4)


def test_publish_needs_known_users(neo4j_config, demo_run):
    out = run_cli("publish", str(demo_run), "--users", "nobody", env=_env(neo4j_config))
    assert out.returncode == 2 and "unknown user id" in out.stderr and "Traceback" not in out.stderr
