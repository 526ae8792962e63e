"""The whole pipeline at 10M interactions on one machine: each stage's wall time and peak memory.

Stages, on the demo shop at ``--scale`` (650 ≈ 10M interactions, 65 ≈ 1M):

1. generate the catalog (the synthetic demo shop, validated like any export);
2. prepare: the leave-one-out split, node features (text and sentiment off: this row measures the graph
   side; ``benchmarks/text_encoding.py`` measures the encoder) and the message-passing graph;
3. train one epoch of the default R-GCN, full-graph message passing at every step (batch
   ``--batch-size`` training edges, ``--negatives`` uniform negatives shared by the batch; the loss is
   back-propagated in chunks, so its memory stays bounded);
4. evaluate: full-ranking NDCG@10 on ``--eval-users`` validation users drawn at random;
5. serve: the HNSW top-K index over the product vectors, then top-10 for 1,000 users through it, with
   recall@10 against exact scoring on 200 of them.

Peak memory is the process's peak resident set (VmHWM), reset at the start of each stage, so a
stage's number includes everything still held from the stages before.

    .venv/bin/python benchmarks/pipeline_scale.py --scale 650
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from bench_report import markdown_table, peak_rss_gib, reset_peak_rss, save
from kgrec.config import OptimConfig, TrainConfig
from kgrec.data.interactions import UserItems
from kgrec.loaders import load_catalog
from kgrec.models import build_model
from kgrec.serve.ann import ProductIndex, top_k
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.loop import embeddings, train_embedding_model
from kgrec.train.pipeline import prepare


class Stages:
    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name: str, fn, detail=lambda out: ""):
        reset_peak_rss()
        t0 = time.perf_counter()
        out = fn()
        row = {"stage": name, "seconds": round(time.perf_counter() - t0, 1), "peak RSS": f"{peak_rss_gib():.2f} GiB",
               "detail": detail(out)}
        print(row, flush=True)
        self.rows.append(row)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=650.0)
    ap.add_argument("--batch-size", type=int, default=65536)
    ap.add_argument("--negatives", type=int, default=OptimConfig.negatives)
    ap.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    ap.add_argument("--eval-users", type=int, default=10_000)
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/pipeline_scale_<scale>.json)")
    args = ap.parse_args()
    stages = Stages()
    cfg = TrainConfig(data="demo", scale=args.scale, text=False, sentiment=False, baselines=(), quiet=True,
                      hidden=args.hidden,
                      out="/tmp/kgrec-scale", optim=OptimConfig(batch_size=args.batch_size, negatives=args.negatives,
                                                                epochs=1, temperature=(0.15,)))
    catalog = stages.run("generate the demo catalog", lambda: load_catalog("demo", scale=args.scale),
                         lambda c: f"{len(c.interactions):,} interactions, {len(c.products):,} products, "
                                   f"{c.interactions['user_id'].nunique():,} users")
    prep = stages.run("split, features (text off), graph", lambda: prepare(cfg, catalog),
                      lambda p: f"{sum(p.data[et].edge_index.shape[1] for et in p.data.edge_types):,} graph edges")
    device = torch.device("cpu")
    model = build_model("rgcn", prep.data, cfg)
    inputs = (prep.data.x_dict, prep.data.edge_index_dict)
    no_val = UserItems(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long),
                       prep.train_index.n_users, prep.train_index.n_items)
    steps = -(-prep.train_users.numel() // args.batch_size)
    stages.run("train one R-GCN epoch (full graph)",
               lambda: train_embedding_model(model, inputs, prep.train_users, prep.train_items, no_val, [],
                                             prep.train_index.n_items, prep.item_category,
                                             dataclasses.replace(cfg.optim, epochs=1), 0, device),
               lambda info: f"{steps} steps of {args.batch_size:,} edges, {args.negatives:,} shared negatives, "
                            f"width {args.hidden}, "
                            f"loss {info['curve'][-1]['loss']:.3f}")
    U, I = stages.run("embed every node (eval mode)", lambda: embeddings(model, inputs, device),
                      lambda ui: f"{ui[0].shape[0]:,} users, {ui[1].shape[0]:,} products")
    sample = prep.val_index.sample_users(args.eval_users)
    users = torch.unique(sample.users)  # the first 1,000 are also the serving row's users
    stages.run(f"evaluate on {users.numel():,} validation users (full ranking)",
               lambda: evaluate_ranking(lambda u: U[u] @ I.T, sample, [prep.train_index]),
               lambda m: f"NDCG@10 {m['ndcg@10']:.4f} after one epoch")
    index = stages.run("build the top-K index (HNSW)", lambda: ProductIndex.build(I),
                       lambda ix: f"{ix.n_items:,} vectors of {ix.dim} dims")

    def serve() -> dict:
        lat, hits, total = [], 0, 0
        seen = prep.train_index
        for n, u in enumerate(users[:1000].tolist()):
            t = time.perf_counter()
            _, got = top_k(lambda _n, u=u: (U[u], torch.empty(0, dtype=torch.long)), index,
                           lambda items, u=u: U[u] @ I[items].T, seen.of(u), 10)
            lat.append((time.perf_counter() - t) * 1000)
            if n < 200:
                scores = U[u] @ I.T
                scores[seen.of(u)] = -float("inf")
                hits += len(set(got.tolist()) & set(scores.topk(10).indices.tolist()))
                total += 10
        return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "recall": hits / total}

    stages.run("top-10 for 1,000 users through the index", serve,
               lambda r: f"p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, recall@10 of exact {r['recall']:.3f}")
    out = args.out or str(Path(__file__).parent / "results" / f"pipeline_scale_{args.scale:g}.json")
    rows = stages.rows
    save(out, {"scale": args.scale, "rows": rows}, f"The pipeline at scale {args.scale:g}",
         "Demo shop, text and sentiment off, one thread per process unless OMP_NUM_THREADS says otherwise; "
         "peak RSS per stage includes what earlier stages still hold.\n\n"
         + markdown_table(list(rows[0]), [list(r.values()) for r in rows]))


if __name__ == "__main__":
    main()
