"""Serving speed.

1. Top-10 latency for one user (p50/p99 over 1,000 users) and all-users throughput, for catalogs of
   10k / 100k / 1M products with 65-dim vectors (a 64-wide R-GCN + bias; the default is now 256 wide), each user
   excluding 20 seen products, through ``Recommender.recommend`` / ``score_matrix`` exactly as served.
2. With ``--run RUN_DIR``: a bounded HTTP load test of ``kgrec serve`` on loopback (1,000 POST
   /recommend requests from 4 client threads): p50/p99 latency and errors.

    .venv/bin/python benchmarks/serving.py --products 10000,100000,1000000 --run runs/latest
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench_report import markdown_table, save
from kgrec.config import TrainConfig
from kgrec.serve.loadtest import load_test, running_server
from kgrec.serve.recommend import Recommender
from kgrec.serve.run import Run


def synthetic(n_products: int, n_users: int = 10_000, dim: int = 65, seen: int = 20, seed: int = 0) -> Recommender:
    """A Recommender over random vectors: the serving path without training a 1M-product model."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.arange(n_users).repeat_interleave(seen)
    items = torch.randint(0, n_products, (n_users * seen,), generator=gen)
    ckpt = {"model": "rgcn", "id_maps": {"user": [f"U{i}" for i in range(n_users)],
                                         "product": [f"P{i}" for i in range(n_products)]},
            "titles": [""] * n_products, "seen_users": users, "seen_items": items, "train_users": users,
            "train_items": items, "user_emb": torch.randn(n_users, dim, generator=gen),
            "item_emb": torch.randn(n_products, dim, generator=gen)}
    return Recommender(Run(Path("."), TrainConfig(), {}, ckpt, {"x": {}, "edge_index": {}}))


def in_process(sizes: list[int], queries: int = 1000, batch: int = 1024) -> list[dict]:
    rows = []
    for n in sizes:
        rec = synthetic(n)
        for u in rec.user_ids[:20]:  # warm-up
            rec.recommend(u, k=10, reasons=False)
        lat = []
        for u in rec.user_ids[:queries]:
            t0 = time.perf_counter()
            rec.recommend(u, k=10, reasons=False)
            lat.append((time.perf_counter() - t0) * 1000)
        n_users = len(rec.user_ids)
        t0 = time.perf_counter()
        for s in range(0, n_users, batch):
            users = torch.arange(s, min(s + batch, n_users))
            scores = rec.score_matrix(users)
            rows_, items = rec.seen.gather(users)
            scores[rows_, items] = -float("inf")
            scores.topk(10, dim=1)
        all_s = time.perf_counter() - t0
        row = {"products": n, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
               "users_per_second_batched": n_users / all_s, "users": n_users, "batch": batch}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def http(run_dir: str, requests: int, concurrency: int) -> dict:
    with running_server(run_dir) as base:
        users = Recommender.load(run_dir).user_ids
        load_test(base, users, requests=50, concurrency=concurrency)  # warm-up (lazy loads, caches)
        return load_test(base, users, requests=requests, concurrency=concurrency)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", default="10000,100000,1000000")
    ap.add_argument("--run", help="a run folder to serve over HTTP for the load test")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "serving.json"))
    args = ap.parse_args()
    result = {"threads": torch.get_num_threads(),
              "in_process": in_process([int(s) for s in args.products.split(",")])}
    if args.run:
        result["http"] = {"run": args.run, **http(args.run, args.requests, args.concurrency)}
    text = ("In process, through `Recommender.recommend` / `score_matrix` exactly as served: random 65-dim "
            "vectors, 10,000 users with 20 seen products each, 1,000 single-user queries, batches of 1,024 for "
            "the throughput.\n\n" + markdown_table(
                ["products", "top-10 p50", "p99", "users/s (batched)"],
                [[f"{r['products']:,}", f"{r['p50_ms']:.2f} ms", f"{r['p99_ms']:.2f} ms",
                  f"{r['users_per_second_batched']:,.0f}"] for r in result["in_process"]]))
    if "http" in result:
        h = result["http"]
        text += (f"\n\nHTTP: `kgrec serve {h['run']}` on loopback, {h['requests']:,} POST /recommend requests "
                 f"(reasons included) from {h['concurrency']} client threads on the same machine: p50 "
                 f"{h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, {h['requests_per_second']:.0f} requests/s, "
                 f"**{h['errors']} errors**.")
    save(args.out, result, "Serving", text)


if __name__ == "__main__":
    main()
