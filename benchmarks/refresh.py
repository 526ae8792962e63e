"""Incremental refresh vs full retrain: train on the first 90 % of interactions by time, then either
refresh that run with the whole export (``kgrec refresh``) or retrain from scratch on it. Both are
evaluated on the same split of the whole export. Prints test NDCG@10 / Recall@10 and wall seconds.

    .venv/bin/python benchmarks/refresh.py --data demo --seed 0
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_report import markdown_table, save
from kgrec.loaders import load_catalog
from kgrec.pipeline import TrainConfig, run_training
from kgrec.refresh import refresh_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="demo")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--share", type=float, default=0.9)
    ap.add_argument("--epochs", type=int, default=20, help="refresh fine-tuning epochs at most")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "refresh.json"))
    args = ap.parse_args()
    full_cat = load_catalog(args.data, scale=args.scale, seed=args.seed)
    early = full_cat.time_prefix(args.share)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(data=args.data, scale=args.scale, seed=args.seed, baselines=(), quiet=True)
        t0 = time.perf_counter()
        run_training(replace(cfg, out=f"{tmp}/old"), early)
        rows["initial run (first 90 %)"] = {"seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        full = run_training(replace(cfg, out=f"{tmp}/full"), full_cat)
        rows["full retrain"] = {**full["models"]["rgcn+paths" if "rgcn+paths" in full["models"] else "rgcn"]["test"],
                                "plain_gnn_ndcg@10": full["models"]["rgcn"]["test"]["ndcg@10"],
                                "epochs": full["models"]["rgcn"]["epochs"], "seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        ref = refresh_run(f"{tmp}/old", args.data, out=f"{tmp}/refreshed", epochs=args.epochs, quiet=True,
                          catalog=full_cat)
        rows["refresh"] = {**ref["models"]["rgcn+paths" if "rgcn+paths" in ref["models"] else "rgcn"]["test"],
                           "plain_gnn_ndcg@10": ref["models"]["rgcn"]["test"]["ndcg@10"],
                           "epochs": ref["models"]["rgcn"]["epochs"], "seconds": time.perf_counter() - t0,
                           "new_users": ref["refresh"]["new_users"], "new_products": ref["refresh"]["new_products"]}
    table = [[name, f"{r['ndcg@10']:.4f}", f"{r['recall@10']:.4f}", f"{r['plain_gnn_ndcg@10']:.4f}", r["epochs"],
              f"{r['seconds']:.1f}"] for name, r in rows.items() if name != "initial run (first 90 %)"]
    full, ref = rows["full retrain"], rows["refresh"]
    save(args.out, {"args": vars(args), "rows": rows}, "Refresh vs full retrain",
         f"`{args.data}` (seed {args.seed}): a run trained on the first {args.share:.0%} of interactions by time is "
         f"refreshed with the whole export (`kgrec refresh`: {ref['new_users']} new users, {ref['new_products']} new "
         "products), next to a full retrain on it; both on the same split of the whole export.\n\n"
         + markdown_table(["", "NDCG@10 (served)", "Recall@10", "NDCG@10 (GNN alone)", "epochs", "seconds"], table)
         + f"\n\nRefresh / retrain: {ref['ndcg@10'] / full['ndcg@10']:.3f} of the served NDCG@10, "
           f"{ref['plain_gnn_ndcg@10'] / full['plain_gnn_ndcg@10']:.3f} of the GNN-alone NDCG@10, in "
           f"{ref['seconds'] / full['seconds']:.2f}× the time.")


if __name__ == "__main__":
    main()
