"""Incremental refresh vs full retrain: train on the first 90 % of interactions by time, then either
refresh that run with the whole export (``kgrec refresh``) or retrain from scratch on it. Both are
evaluated on the same split of the whole export. Prints test NDCG@10 / Recall@10 and wall seconds.

    .venv/bin/python benchmarks/refresh.py --data demo --seed 0
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_report import markdown_table, save
from kgrec.config import TrainConfig
from kgrec.loaders import load_catalog
from kgrec.train.pipeline import run_training
from kgrec.train.refresh import refresh_run


def _row(metrics: dict, seconds: float) -> dict:
    served = metrics["models"]["rgcn+paths" if "rgcn+paths" in metrics["models"] else "rgcn"]["test"]
    return {"ndcg@10": served["ndcg@10"], "recall@10": served["recall@10"],
            "plain_gnn_ndcg@10": metrics["models"]["rgcn"]["test"]["ndcg@10"],
            "epochs": metrics["models"]["rgcn"]["epochs"], "seconds": seconds}


def one_seed(args, seed: int) -> dict:
    full_cat = load_catalog(args.data, scale=args.scale, seed=seed)
    early = full_cat.time_prefix(args.share)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(data=args.data, scale=args.scale, seed=seed, baselines=(), quiet=True)
        run_training(replace(cfg, out=f"{tmp}/old"), early)
        t0 = time.perf_counter()
        retrained = run_training(replace(cfg, out=f"{tmp}/full"), full_cat)
        full = _row(retrained, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = refresh_run(f"{tmp}/old", args.data, out=f"{tmp}/refreshed", epochs=args.epochs, quiet=True,
                          catalog=full_cat)
        refreshed = {**_row(ref, time.perf_counter() - t0), "new_users": ref["refresh"]["new_users"],
                     "new_products": ref["refresh"]["new_products"]}
    print(f"seed {seed}: full {full}, refresh {refreshed}", flush=True)
    return {"seed": seed, "full retrain": full, "refresh": refreshed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="demo")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seeds", default="0", help="comma-separated; each seed generates (demo), splits and trains anew")
    ap.add_argument("--share", type=float, default=0.9)
    ap.add_argument("--epochs", type=int, default=20, help="refresh fine-tuning epochs at most")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "refresh.json"))
    args = ap.parse_args()
    runs = [one_seed(args, int(s)) for s in args.seeds.split(",")]
    table = []
    for r in runs:
        for name in ("full retrain", "refresh"):
            x = r[name]
            table.append([r["seed"], name, f"{x['ndcg@10']:.4f}", f"{x['recall@10']:.4f}",
                          f"{x['plain_gnn_ndcg@10']:.4f}", x["epochs"], f"{x['seconds']:.1f}"])

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[name][key] for r in runs)

    served = mean("refresh", "ndcg@10") / mean("full retrain", "ndcg@10")
    gnn = mean("refresh", "plain_gnn_ndcg@10") / mean("full retrain", "plain_gnn_ndcg@10")
    speed = mean("refresh", "seconds") / mean("full retrain", "seconds")
    new = runs[0]["refresh"]
    save(args.out, {"args": vars(args), "runs": runs, "served_ratio": served, "gnn_ratio": gnn, "time_ratio": speed},
         "Refresh vs full retrain",
         f"`{args.data}`: a run trained on the first {args.share:.0%} of interactions by time is refreshed with the "
         f"whole export (`kgrec refresh`; seed {runs[0]['seed']}: {new['new_users']} new users, {new['new_products']} "
         "new products), next to a full retrain on it; both are evaluated on the same split of the whole export. "
         "Seconds exclude the initial run.\n\n"
         + markdown_table(["seed", "", "NDCG@10 (served)", "Recall@10", "NDCG@10 (GNN alone)", "epochs", "seconds"],
                          table)
         + f"\n\nOver {len(runs)} seed(s), refresh / retrain: **{served:.3f}** of the mean served NDCG@10, "
           f"{gnn:.3f} of the mean GNN-alone NDCG@10, in **{speed:.2f}×** the time.")

if __name__ == "__main__":
    main()
