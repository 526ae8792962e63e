"""Real-time events: POST /events changes the next recommendations without retraining, and what was
acknowledged survives kill -9; a new user is served from their first event; refresh --events folds the
log into the next run."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

from conftest import REPO, run_cli
from kgrec.serve.loadtest import post


def _serve(run, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kgrec.cli", "serve", str(run), "--port", str(port), "--quiet"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "kgrec serve did not start"
            time.sleep(0.3)


def _categories(run) -> dict[str, str]:
    from kgrec import Recommender

    pc = Recommender.load(run).run.catalog().product_categories.drop_duplicates("product_id")
    return dict(zip(pc["product_id"], pc["category_id"]))


def test_events_move_recommendations_at_once_and_survive_kill_9(demo_run, tmp_path):
    from kgrec import Recommender
    from kgrec.neo4j.server import free_port

    run = tmp_path / "live"
    shutil.copytree(demo_run, run)
    rec = Recommender.load(run)
    cat_of = _categories(run)
    user = rec.user_ids[5]
    seen = set(rec.seen.of(int(rec.user_index([user])[0])).tolist())
    base = f"http://127.0.0.1:{(port := free_port())}"
    proc = _serve(run, port)
    try:
        _, body = post(base, "/recommend", {"user_id": user, "k": 10})
        before = [r["product_id"] for r in body["recommendations"]]
        counts = Counter(cat_of[p] for p in before)
        # a category the user's top-10 hardly holds, with products the user has not seen
        pool: dict[str, list[str]] = {}
        for i, p in enumerate(rec.product_ids):
            if i not in seen and p in cat_of and p not in before:
                pool.setdefault(cat_of[p], []).append(p)
        category = min((c for c in pool if len(pool[c]) >= 6), key=lambda c: counts.get(c, 0))
        picked = pool[category][:3]
        t0 = time.perf_counter()
        for p in picked:
            status, answer = post(base, "/events", {"user_id": user, "product_id": p, "kind": "purchase"})
            assert status == 200 and answer["status"] == "logged", answer
        _, body = post(base, "/recommend", {"user_id": user, "k": 10})
        assert time.perf_counter() - t0 < 1.0
        after = [r["product_id"] for r in body["recommendations"]]
        assert not set(picked) & set(after)  # what they just bought is excluded
        n_before = sum(cat_of[p] == category for p in before)
        n_after = sum(cat_of[p] == category for p in after)
        assert n_after > n_before, (category, n_before, n_after)
        proc.send_signal(signal.SIGKILL)  # right after the 200s: nothing acknowledged may be lost
        proc.wait()
        proc = _serve(run, port)
        _, body = post(base, "/recommend", {"user_id": user, "k": 10})
        assert [r["product_id"] for r in body["recommendations"]] == after
        # a shopper the run has never seen gets recommendations from the first event
        status, _ = post(base, "/recommend", {"user_id": "first-time shopper", "k": 5})
        assert status == 404
        post(base, "/events", {"user_id": "first-time shopper", "product_id": picked[0]})
        status, body = post(base, "/recommend", {"user_id": "first-time shopper", "k": 5})
        assert status == 200 and len(body["recommendations"]) == 5
        assert picked[0] not in [r["product_id"] for r in body["recommendations"]]
        status, body = post(base, "/events", {"user_id": user, "product_id": "no such product"})
        assert status == 404
        status, body = post(base, "/events", {"user_id": user, "product_id": picked[0], "kind": "teleport"})
        assert status == 400 and "unknown event kind" in body["detail"]
    finally:
        proc.kill()
        proc.wait()
    log = (tmp_path / "live.state" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log) == 4  # the three purchases and the new shopper's, not the refused ones

    # refresh --events: the logged events become interactions of the next run
    out = run_cli("refresh", str(run), "--data", "demo", "--events", "--epochs", "1", "--out", str(tmp_path / "next"),
                  "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["refresh"]["events"] == 4
    nxt = Recommender.load(tmp_path / "next")
    assert "first-time shopper" in nxt.user_ids
    u = int(nxt.user_index([user])[0])
    assert set(picked) <= {nxt.product_ids[i] for i in nxt.seen.of(u).tolist()}
