"""Soak test of ``kgrec serve``: client threads mixing /recommend, /score, /search and /explain for a
fixed time, with the run folder replaced in place and ``POST /admin/reload`` half-way through. Every
answer is checked against the same run loaded in this process (``Recommender`` / ``Searcher``): an
answer that matches neither the version before the reload nor the one after it is a wrong answer, and
after the reload has returned only the new version is right.

    .venv/bin/python benchmarks/soak.py --seconds 600 --threads 8

Without ``--run`` / ``--run-b`` it trains two small demo runs (different seeds, so different models) to
swap. A 503 from /explain (more than 2 explanations at once) is retried after its Retry-After, as a
client should; the retries are counted. Loopback only.
"""
from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench_report import latency_ms, markdown_table, save
from kgrec.serve.loadtest import post, running_server

QUERIES = ("camera", "coffee grinder", "running shoes", "shampoo", "travel guide", "yoga mat")


def train_small(out: Path, seed: int) -> Path:
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    cfg = TrainConfig(data="demo", scale=0.3, seed=seed, quiet=True, device="cpu", out=str(out), baselines=(),
                      optim=OptimConfig(epochs=30, patience=5, temperature=(0.4,)))
    run_training(cfg)
    return out


class Truth:
    """What one version of the run answers, computed in this process."""

    def __init__(self, run: Path, users: list[str]):
        from kgrec import Recommender
        from kgrec.serve.search import Searcher

        rec = Recommender.load(run)
        self.users = [u for u in users if u in set(rec.user_ids)]
        self.top = {u: [r["product_id"] for r in rec.recommend(u, k=10)] for u in self.users}
        searcher = Searcher(rec, rec.run.catalog())
        self.search = {q: [r["product_id"] for r in searcher.search(q, None, k=10, alpha=1.0)] for q in QUERIES}
        self.rec = rec

    def score(self, user: str, product: str) -> float:
        return float(self.rec.score([user], [product])[0, 0])


def one_request(base: str, rng: random.Random, phase: dict, users: list[str]) -> tuple[str, int, float, bool, int]:
    """(endpoint, status, ms, answer is right, 503 retries). Right: it matches a version that was
    current at some moment while the request was in flight (``phase["truths"]`` at its start or end)."""
    start = phase["truths"]
    truths = start
    user = rng.choice(users)
    pick = rng.random()
    retries = 0
    t0 = time.perf_counter()
    if pick < 0.6:
        path, body = "/recommend", {"user_id": user, "k": 10}
    elif pick < 0.75:
        path, body = "/score", {"user_ids": [user], "product_ids": truths[0].top.get(user, [])[:3] or ["?"]}
    elif pick < 0.9:
        path, body = "/search", {"query": rng.choice(QUERIES), "k": 10, "alpha": 1.0}
    else:
        path, body = "/explain", {"user_id": user, "product_id": truths[0].top[user][0], "top": 2}
    deadline = time.monotonic() + 120
    while True:  # a busy explain answers 503 at once; a client retries after a randomised pause
        status, answer = post(base, path, body, timeout=120)
        if status != 503 or path != "/explain" or time.monotonic() > deadline:
            break
        retries += 1
        time.sleep(rng.uniform(0.2, 1.5))
    ms = (time.perf_counter() - t0) * 1000
    truths = start + [t for t in phase["truths"] if t not in start]
    right = False
    if status == 200:
        if path == "/recommend":
            got = [r["product_id"] for r in answer["recommendations"]]
            right = any(t.top.get(user) == got for t in truths)
        elif path == "/score":
            right = any(all(abs(a - t.score(user, p)) < 1e-3 for p, a in zip(body["product_ids"], answer["scores"][0]))
                        for t in truths)
        elif path == "/search":
            got = [r["product_id"] for r in answer["results"]]
            right = any(t.search[body["query"]] == got for t in truths)
        else:
            right = any(abs(answer["score"] - t.score(user, body["product_id"])) < 1e-3 for t in truths)
    return path, status, ms, right, retries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="the run served first (default: a small demo run trained now)")
    ap.add_argument("--run-b", help="the run swapped in half-way (default: another small demo run)")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kgrec-soak-"))
    run_a = Path(args.run) if args.run else train_small(work / "a", seed=0)
    run_b = Path(args.run_b) if args.run_b else train_small(work / "b", seed=1)
    live = work / "live"
    shutil.copytree(run_a, live)
    from kgrec import Recommender

    users = sorted(set(Recommender.load(run_a).user_ids) & set(Recommender.load(run_b).user_ids))[:300]
    truth_a, truth_b = Truth(run_a, users), Truth(run_b, users)
    differ = sum(truth_a.top[u] != truth_b.top[u] for u in users)
    print(f"{len(users)} users; the two versions' top-10 differ for {differ} of them")
    results: list[tuple] = []
    phase = {"truths": [truth_a]}
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds

    with running_server(live, timeout=300) as base:
        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                row = one_request(base, rng, phase, users)
                with lock:
                    results.append(row)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.threads)]
        for t in threads:
            t.start()
        time.sleep(args.seconds / 2)
        from kgrec.serve.run import run_writer

        phase["truths"] = [truth_a, truth_b]  # while the swap and reload run, either answer is right
        with run_writer(live) as tmp:  # what an in-place refresh does
            shutil.copytree(run_b, tmp, dirs_exist_ok=True)
        status, answer = post(base, "/admin/reload", {}, timeout=300)
        assert status == 200, answer
        phase["truths"] = [truth_b]  # from now on only the new version is right
        print(f"reloaded at {args.seconds / 2:.0f} s: {answer}")
        for t in threads:
            t.join()

    by = defaultdict(list)
    for row in results:
        by[row[0]].append(row)
    table = []
    for path in ("/recommend", "/score", "/search", "/explain"):
        rows = by.get(path, [])
        if not rows:
            continue
        ms = np.array([r[2] for r in rows])
        table.append({"endpoint": path, "requests": len(rows), "errors": sum(r[1] != 200 for r in rows),
                      "wrong": sum(r[1] == 200 and not r[3] for r in rows), "503 retries": sum(r[4] for r in rows),
                      **latency_ms(ms)})
    total = {"endpoint": "all", "requests": len(results), "errors": sum(r["errors"] for r in table),
             "wrong": sum(r["wrong"] for r in table), "503 retries": sum(r["503 retries"] for r in table),
             **latency_ms([r[2] for r in results])}
    table.append(total)
    headers = list(table[0])
    md = markdown_table(headers, [[r[h] for h in headers] for r in table])
    save(args.out, {"seconds": args.seconds, "threads": args.threads, "users": len(users),
                    "top10_differ_between_versions": differ, "rows": table},
         "Serving soak: mixed endpoints, run replaced in place and reloaded half-way",
         f"{args.seconds:.0f} s, {args.threads} client threads, {len(users)} users (top-10 differs between the "
         f"two versions for {differ}); answers checked against the runs loaded in process.\n\n{md}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
