"""kgrec serve: the real HTTP server on loopback, good and bad requests, and a bounded load test."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from kgrec.serve.loadtest import load_test, post, running_server


@pytest.fixture(scope="module")
def api(demo_run):
    with running_server(demo_run, timeout=120) as base:
        yield base


def _no_trace(body) -> None:
    assert "Traceback" not in json.dumps(body) and 'File "' not in json.dumps(body)


def test_endpoints_answer_like_the_cli(api, demo_run):
    from conftest import validate
    from kgrec import Recommender

    rec = Recommender.load(demo_run)
    user = rec.user_ids[4]
    with urllib.request.urlopen(api + "/health") as r:
        health = json.loads(r.read())
    assert health["model"] == rec.served_name == "rgcn+paths" and health["users"] == len(rec.user_ids)
    status, body = post(api, "/recommend", {"user_id": user, "k": 5})
    assert status == 200
    validate("recommend", body)
    assert [r["product_id"] for r in body["recommendations"]] == [r["product_id"] for r in rec.recommend(user, k=5)]
    status, body = post(api, "/recommend", {"product_ids": rec.product_ids[:2], "k": 3})
    assert status == 200 and body["user_id"] is None and len(body["recommendations"]) == 3
    status, body = post(api, "/score", {"user_ids": [user], "product_ids": rec.product_ids[:3]})
    assert status == 200
    assert body["scores"][0] == pytest.approx(rec.score([user], rec.product_ids[:3])[0].tolist(), abs=1e-5)
    status, body = post(api, "/explain", {"user_id": user, "product_id": rec.recommend(user, k=1)[0]["product_id"],
                                          "top": 2})
    assert status == 200
    validate("explain", body)
    status, body = post(api, "/search", {"query": "camera", "user_id": user, "k": 4})
    assert status == 200
    validate("search", body)
    from kgrec.serve.run import load_run
    from kgrec.serve.trending import Trending

    trend = Trending(load_run(demo_run))
    category = rec.run.catalog().categories["category_id"].iloc[0]
    with urllib.request.urlopen(api + "/trending?k=3&category=" + urllib.parse.quote(category)) as r:
        body = json.loads(r.read())
    assert [p["product_id"] for p in body["products"]] == [p["product_id"] for p in trend.top(3, category)]
    with urllib.request.urlopen(api + "/openapi.json") as r:
        spec = json.loads(r.read())
    assert {"/recommend", "/score", "/explain", "/search", "/health", "/trending"} <= set(spec["paths"])


@pytest.mark.parametrize("path,body,status,needle", [
    ("/recommend", b"{not json", 422, "JSON"),
    ("/recommend", {"user_id": "U1", "k": 1000}, 422, "less than or equal to 100"),
    ("/recommend", {"k": 5}, 422, "exactly one of user_id or product_ids"),
    ("/recommend", {"user_id": "nobody", "k": 5}, 404, "unknown user id"),
    ("/recommend", {"product_ids": ["no-such"], "k": 5}, 400, "at least one known product id"),
    ("/score", {"user_ids": [], "product_ids": ["x"]}, 422, "at least 1 item"),
    ("/score", {"user_ids": ["x"] * 1001, "product_ids": ["x"]}, 422, "at most 1000 items"),
    ("/search", {"query": "x", "alpha": 3}, 422, "less than or equal to 1"),
    ("/explain", {"user_id": "nobody", "product_id": "x"}, 404, "unknown user id"),
    ("/recommend", {"user_id": "x" * 70_000}, 413, "request body over"),
])
def test_bad_requests_get_clear_errors_and_no_stack_traces(api, path, body, status, needle):
    got, answer = post(api, path, body)
    assert got == status, answer
    assert needle in json.dumps(answer)
    _no_trace(answer)


def test_bounded_load_has_no_errors(api, demo_run):
    from kgrec import Recommender

    result = load_test(api, Recommender.load(demo_run).user_ids, requests=300, concurrency=4)
    assert result["errors"] == 0 and result["requests"] == 300
    assert result["p50_ms"] > 0 and result["p99_ms"] >= result["p50_ms"]
