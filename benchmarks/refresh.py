"""Incremental refresh vs full retrain: train on the first 90 % of interactions by time, then either
refresh that run with the whole export (``kgrec refresh``) or retrain from scratch on it. Both are
evaluated on the same split of the whole export. Prints test NDCG@10 / Recall@10 and wall seconds.

    .venv/bin/python benchmarks/refresh.py --data demo --seed 0
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

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
    print(f"{'':<26}{'NDCG@10':>9}{'Recall@10':>11}{'GNN only':>10}{'epochs':>8}{'seconds':>9}")
    for name in ("full retrain", "refresh"):
        r = rows[name]
        print(f"{name:<26}{r['ndcg@10']:>9.4f}{r['recall@10']:>11.4f}{r['plain_gnn_ndcg@10']:>10.4f}"
              f"{r['epochs']:>8}{r['seconds']:>9.1f}")
    ratio = rows["refresh"]["ndcg@10"] / rows["full retrain"]["ndcg@10"]
    print(f"refresh / full NDCG@10 = {ratio:.3f}; time {rows['refresh']['seconds'] / rows['full retrain']['seconds']:.2f}× "
          f"of the retrain; {rows['refresh']['new_users']} new users, {rows['refresh']['new_products']} new products")
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
