"""Explanations: paths ranked by the model, readable, and their Cypher returns the same paths in Neo4j."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


def _pairs(run, n):
    from kgrec import Recommender

    rec = Recommender.load(run)
    return [(u, rec.recommend(u, k=1)[0]["product_id"]) for u in rec.user_ids[:n]]


def test_explain_ranks_paths_by_model(demo_run):
    from kgrec.serve.explain import Explainer

    ex = Explainer.load(demo_run)
    user, product = _pairs(demo_run, 1)[0]
    result = ex.explain(user, product, top=5)
    assert result["paths"], "a recommended product should be reachable in ≤ 3 hops"
    imps = [p["importance"] for p in result["paths"]]
    assert imps == sorted(imps, reverse=True)
    for path in result["paths"]:
        assert path["nodes"][0] == {"type": "user", "id": user}
        assert path["nodes"][-1] == {"type": "product", "id": product}
        assert path["sentence"].startswith(("You chose ", "You recently chose "))
    # the importance is the model's own score drop: recompute it for the top path
    u, p = int(ex.rec.user_index([user])[0]), int(ex.rec.product_index([product])[0])
    top = result["paths"][0]
    steps = [(a["type"], rel, b["type"], int(_index(ex, a)), int(_index(ex, b)))
             for a, rel, b in zip(top["nodes"], top["relations"], top["nodes"][1:])]
    assert ex.score(u, p) - ex.score(u, p, steps) == pytest.approx(top["importance"], abs=1e-5)


def _index(ex, node):
    return ex.rec.ckpt["id_maps"][node["type"]].index(node["id"])


def test_explain_cli_json(demo_run):
    user, product = _pairs(demo_run, 1)[0]
    out = run_cli("explain", str(demo_run), "--user", user, "--product", product, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"user_id", "product_id", "model", "score", "paths_found", "paths_tested", "paths"} <= set(data)
    for path in data["paths"]:
        assert {"importance", "relations", "nodes", "sentence"} <= set(path)
        assert ("cypher" in path) and (path["cypher"] is None or "$n0" in path["cypher"])


@pytest.mark.neo4j
def test_cypher_returns_the_same_paths(demo_run, small_demo, neo4j_driver):
    from kgrec.neo4j.importer import import_catalog
    from kgrec.serve.explain import Explainer, run_cypher

    import_catalog(small_demo, neo4j_driver)
    ex = Explainer.load(demo_run)
    checked = 0
    for user, product in _pairs(demo_run, 40):
        for path in ex.explain(user, product, top=3, candidates=15)["paths"]:
            if path["cypher"] is None:
                continue
            found = run_cypher(neo4j_driver, path["cypher"], path["parameters"])
            assert found == [[n["id"] for n in path["nodes"]]], path
            checked += 1
    assert checked >= 20
    # recently_chose is derived, not stored: its Cypher matches the interaction it comes from
    recent = [path for user, product in _pairs(demo_run, 10)
              for path in ex.paths(*(int(ex.rec.user_index([user])[0]), int(ex.rec.product_index([product])[0])))
              if path[0][1] == "recently_chose"
              and all(ex.schema.edge_by_relation(step[1]).derived is None for step in path[1:])][:20]
    assert recent
    for steps in recent:
        path = ex.describe(steps, 0.0)
        assert path["sentence"].startswith("You recently chose ") and path["cypher"] is not None
        assert run_cypher(neo4j_driver, path["cypher"], path["parameters"]) == [[n["id"] for n in path["nodes"]]]
