"""Cold start: hold 10 % of the interacted products out of training entirely, train a GNN on the rest,
fold the held-out products in from their text and catalog edges (no retraining), and rank them, among
every product without training interactions, for every training user who interacted with them.
Prints Recall@20 / NDCG@20 of the GNN next to
text-only nearest neighbours and random ranking, per dataset and seed, and writes JSON.

    .venv/bin/python benchmarks/cold_start.py --datasets demo,magazine --seeds 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_report import DATASETS, markdown_table, save
from kgrec.config import TrainConfig
from kgrec.serve.coldstart import evaluate_cold_start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="demo,magazine")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--model", default="rgcn", choices=["rgcn", "hgt"])
    ap.add_argument("--share", type=float, default=0.1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cold_start.json"))
    args = ap.parse_args()
    rows = []
    for name in args.datasets.split(","):
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(data=DATASETS.get(name, name), seed=seed, model=args.model, out=tmp, quiet=True)
                t0 = time.perf_counter()
                res = evaluate_cold_start(cfg, share=args.share, seed=seed)
                res["seconds"] = round(time.perf_counter() - t0, 1)
                res["dataset_name"] = name
                rows.append(res)
                print(f"{name} seed {seed}: {json.dumps(res['results'])}", flush=True)
    table = []
    for r in rows:
        res = r["results"]
        m = res[r["model"]]
        table.append(
            [
                r["dataset_name"],
                r["seed"],
                r["held_out_products"],
                f"{r['candidates']:,}",
                r["users_evaluated"],
                f"{m['recall@20']:.3f}",
                f"{res['text_knn']['recall@20']:.3f}",
                f"{res['random']['recall@20']:.3f}",
                f"{m['ndcg@20']:.4f}",
                f"{res['text_knn']['ndcg@20']:.4f}",
                f"{r['seconds']:.0f}",
            ]
        )
    save(
        args.out,
        rows,
        "Cold start",
        f"{args.share:.0%} of the interacted products held out of training entirely, folded in from their text and "
        f"catalog edges without retraining ({args.model}), and ranked among every product without training "
        "interactions for every training user who interacted with them.\n\n"
        + markdown_table(
            [
                "dataset",
                "seed",
                "held out",
                "candidates",
                "users",
                "GNN R@20",
                "text-kNN R@20",
                "random R@20",
                "GNN NDCG@20",
                "text-kNN NDCG@20",
                "seconds",
            ],
            table,
        ),
    )


if __name__ == "__main__":
    main()
