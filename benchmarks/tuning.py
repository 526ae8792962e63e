"""What `kgrec tune` adds: the GNN with the defaults vs with the settings the validation search chose,
on the same split and seed, next to EASE^R. Test metrics of the models fitted on the training split.

    .venv/bin/python benchmarks/tuning.py --datasets magazine --trials 25 --seeds 0
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from bench_report import dataset_source, markdown_table, save
from kgrec.config import TrainConfig
from kgrec.train.pipeline import load_source, run_training
from kgrec.train.tune import tune, tuned_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="magazine")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--runs", default="/tmp/kgrec-tuning")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tuning.json"))
    args = ap.parse_args()
    rows, table = [], []
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            base = TrainConfig(data=source, seed=seed, quiet=True, refit=False, baselines=("ease",),
                               out=f"{args.runs}/{ds}/default/{seed}")
            catalog = load_source(base)
            t0 = time.perf_counter()
            tuning = tune(base, trials=args.trials, catalog=catalog, progress=False)
            search_s = time.perf_counter() - t0
            best = dataclasses.replace(tuned_config(base, tuning), out=f"{args.runs}/{ds}/tuned/{seed}")
            default = run_training(base, catalog)
            tuned = run_training(best, catalog)
            row = {
                "dataset": ds, "seed": seed, "trials": len(tuning.trials),
                "pruned": sum(t["state"] == "pruned" for t in tuning.trials), "search_seconds": search_s,
                "best": tuning.best,
                "default": _gnn(default),
                "tuned": _gnn(tuned),
                "ease": {"val": default["models"]["ease"]["val"]["ndcg@10"],
                         "test": default["models"]["ease"]["test"]["ndcg@10"]},
            }
            rows.append(row)
            print(row, flush=True)
            for label in ("default", "tuned"):
                part = row[label]
                table.append([ds, seed, f"R-GCN, {label}", f"{part['val']:.4f}", f"{part['test']:.4f}",
                              f"{part['served_test']:.4f}"])
            table.append([ds, seed, "EASE^R", f"{row['ease']['val']:.4f}", f"{row['ease']['test']:.4f}", ""])
    notes = "; ".join(f"{r['dataset']} seed {r['seed']}: {r['trials']} trials ({r['pruned']} stopped early) in "
                      f"{r['search_seconds']:.0f} s, chose {_short(r['best'])}" for r in rows)
    save(args.out, rows, "kgrec tune: the defaults vs the validation search",
         f"`kgrec tune` with {args.trials} trials per dataset and seed; both R-GCN rows fitted on the training "
         "split with the same seed (path scores weighted on validation as served). Validation NDCG@10 is what the "
         f"search maximised; test was not looked at. {notes}.\n\n"
         + markdown_table(["dataset", "seed", "model", "val ndcg@10", "test ndcg@10", "served test ndcg@10"], table))


def _gnn(metrics: dict) -> dict:
    """Validation and test NDCG@10 of the GNN alone, and test NDCG@10 of the served blend."""
    return {"val": metrics["models"]["rgcn"]["val"]["ndcg@10"], "test": metrics["models"]["rgcn"]["test"]["ndcg@10"],
            "served_test": metrics["models"]["rgcn+paths"]["test"]["ndcg@10"]}


def _short(best: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in best.items())


if __name__ == "__main__":
    main()
