"""``POST /events`` mixed with ``POST /recommend`` on loopback: p50/p99 per endpoint and errors, and a
check that every acknowledged event is in the durable log afterwards.

    .venv/bin/python benchmarks/events.py --requests 3000 --threads 4
"""
from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench_report import latency_ms, markdown_table, save
from kgrec.serve.loadtest import post, running_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="a run folder (default: a small demo run trained now)")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--events-share", type=float, default=0.3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "events.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kgrec-events-"))
    if args.run:
        shutil.copytree(args.run, work / "run")
    else:
        from kgrec.config import OptimConfig, TrainConfig
        from kgrec.train.pipeline import run_training

        run_training(TrainConfig(data="demo", scale=0.3, quiet=True, out=str(work / "run"), baselines=(),
                                 optim=OptimConfig(epochs=20, patience=5, temperature=(0.4,))))
    from kgrec import Recommender

    rec = Recommender.load(work / "run")
    users, products = rec.user_ids, rec.product_ids
    results = []
    with running_server(work / "run") as base:
        def one(i: int) -> tuple[str, int, float]:
            rng = random.Random(i)
            user = rng.choice(users)
            t0 = time.perf_counter()
            if rng.random() < args.events_share:
                status, _ = post(base, "/events", {"user_id": user, "product_id": rng.choice(products)})
                path = "/events"
            else:
                status, _ = post(base, "/recommend", {"user_id": user, "k": 10})
                path = "/recommend"
            return path, status, (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
    logged = len((work / "run.state" / "events.jsonl").read_text(encoding="utf-8").splitlines())
    acked = sum(1 for p, s, _ in results if p == "/events" and s == 200)
    rows = []
    for path in ("/events", "/recommend"):
        ms = np.array([m for p, _, m in results if p == path])
        errors = sum(1 for p, s, _ in results if p == path and s != 200)
        rows.append({"endpoint": path, "requests": len(ms), "errors": errors, **latency_ms(ms)})
    headers = list(rows[0])
    md = markdown_table(headers, [[r[h] for h in headers] for r in rows])
    save(args.out, {"rows": rows, "acknowledged": acked, "in_log": logged, "seconds": wall},
         "Real-time events mixed with recommendations",
         f"{args.requests} requests from {args.threads} client threads in {wall:.1f} s; {acked} events acknowledged, "
         f"{logged} in the log afterwards (each fsynced before its 200).\n\n{md}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
