"""Quality benchmark: models × datasets × test metrics, mean ± std over seeds, all models trained in
the same run on the same split. Prints a table and writes JSON.

    .venv/bin/python benchmarks/quality.py --datasets demo,magazine,scientific --seeds 0,1,2 --out benchmarks/results/quality.json

Datasets: ``demo`` (synthetic), and ``magazine`` / ``scientific`` from ../shared/datasets (skipped
with a note when absent). Extra ablation rows: ``--ablations`` adds R-GCN without text, without
sentiment, and without KG relations (interactions only). Every GNN run also reports ``MODEL+paths``
(the GNN plus validation-weighted knowledge-graph path scores, what kgrec serves) and ``paths`` (the
path scores alone), see kgrec.models.paths.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from kgrec.pipeline import TrainConfig, run_training

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
DATASETS = {"demo": "demo", "magazine": SHARED / "amazon-magazine-2018", "scientific": SHARED / "amazon-scientific-2018"}
METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20", "mrr", "coverage@10")
ABLATIONS = {"rgcn-no-text": {"text": False}, "rgcn-no-sentiment": {"sentiment": False},
             "rgcn-no-kg": {"relations": ()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="demo,magazine,scientific")
    ap.add_argument("--models", default="rgcn,hgt", help="GNNs to train (baselines always run)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality.json"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {}
    for ds in args.datasets.split(","):
        source = DATASETS[ds]
        if ds != "demo" and not Path(source).is_dir():
            print(f"skip {ds}: {source} is absent")
            continue
        rows: dict[str, list[dict]] = {}
        runs = [(m, {}, True) for m in args.models.split(",")]
        if args.ablations:
            runs += [(name, over, False) for name, over in ABLATIONS.items()]
        for seed in seeds:
            for i, (name, over, with_baselines) in enumerate(runs):
                model = name.split("-")[0]
                baselines = ("popularity", "itemknn", "lightgcn") if (with_baselines and i == 0) else ()
                cfg = dataclasses.replace(TrainConfig(), data=str(source), model=model, baselines=baselines, seed=seed,
                                          device=args.device, out=f"/tmp/kgrec-bench/{ds}/{name}/{seed}", quiet=True, **over)
                t0 = time.perf_counter()
                metrics = run_training(cfg)
                for mname, m in metrics["models"].items():
                    if mname == "paths" and i > 0:
                        continue  # the same path scores on the same split: counted once per seed
                    key = name + mname[len(model):] if mname.startswith(model) else mname
                    rows.setdefault(key, []).append({**m["test"], "epochs": m["epochs"], "train_seconds": m["train_seconds"]})
                print(f"{ds} seed {seed} {name}: done in {time.perf_counter() - t0:.0f}s", flush=True)
        results[ds] = {k: _summary(v) for k, v in rows.items()}
        _print(ds, results[ds], len(seeds))
        out = Path(args.out)  # written after every dataset, so a long run keeps what it finished
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"seeds": seeds, "results": results}, indent=2), encoding="utf-8")
        print(f"wrote {out}")


def _summary(runs: list[dict]) -> dict:
    out = {}
    for key in METRICS + ("epochs", "train_seconds"):
        vals = [r[key] for r in runs if key in r]
        out[key] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}
    return out


def _print(ds: str, table: dict, n: int) -> None:
    print(f"\n{ds}: test metrics, full ranking, mean ± std over {n} seed(s)")
    print(f"{'model':<20}" + "".join(f"{m:>18}" for m in METRICS[:4]) + f"{'train s':>10}")
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["ndcg@10"]["mean"]):
        cells = "".join(f"{row[m]['mean']:>11.4f} ±{row[m]['std']:.4f}" for m in METRICS[:4])
        print(f"{name:<20}{cells}{row['train_seconds']['mean']:>10.1f}")


if __name__ == "__main__":
    main()
