"""What a shop gets: the served model on purchases it has never seen.

For each dataset, every user's last interaction (users with 3 or more) is cut out of the export, as a
person testing kgrec would do. Each model is then trained on the rest exactly as a shop would run it,
``python train.py --data EXPORT --split val-only --model M``: settings and epoch counts are chosen on
each user's last *given* interaction, and the run serves a model refitted on every given interaction.
The cut-out interactions are scored through ``Recommender`` (what ``kgrec recommend`` and ``kgrec
serve`` answer), ranking every product with the user's given interactions excluded.

    .venv/bin/python benchmarks/served.py --datasets demo,magazine,scientific --seeds 0,1,2

The ``no refit`` row serves the model fitted without the validation interactions (``--no-refit``): the
difference is what serving with all the data is worth.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from bench_report import REPO, dataset_source, markdown_table, save
from kgrec.config import TrainConfig
from kgrec.data.catalog import Catalog
from kgrec.data.interactions import UserItems
from kgrec.data.split import split_interactions
from kgrec.loaders import load_catalog
from kgrec.serve.recommend import Recommender
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import run_training

# (row label, TrainConfig overrides); every run serves its own main model
RUNS = {
    "rgcn+paths": {"model": "rgcn"},
    "rgcn": {"model": "rgcn", "paths": False},
    "rgcn+paths (no refit)": {"model": "rgcn", "refit": False},
    "ease": {"model": "ease"},
    "itemknn": {"model": "itemknn"},
    "lightgcn": {"model": "lightgcn"},
    "popularity": {"model": "popularity"},
}
METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def cut_last(catalog: Catalog, seed: int) -> tuple[Catalog, list[tuple[str, str]]]:
    """The catalog without each user's last (user, product) pair, and those pairs."""
    held = split_interactions(catalog.interactions, "loo", seed=seed)
    pairs = list(zip(held.test_pairs["user_id"], held.test_pairs["product_id"]))
    key = set(pairs)
    inter = catalog.interactions
    keep = np.array([(u, p) not in key for u, p in zip(inter["user_id"], inter["product_id"])])
    tables = dict(catalog.tables)
    tables["interactions"] = inter[keep].reset_index(drop=True)
    return dataclasses.replace(catalog, tables=tables), pairs


def score_held_out(run_dir: str, pairs: list[tuple[str, str]]) -> dict:
    """Full-ranking metrics of the served model on the cut-out pairs (given interactions excluded)."""
    rec = Recommender.load(run_dir)
    users_known, products_known = rec.run.index("user"), rec.run.index("product")
    known = [(u, p) for u, p in pairs if u in users_known and p in products_known]
    users, items = rec.user_index([u for u, _ in known]), rec.product_index([p for _, p in known])
    targets = UserItems(users, items, len(rec.user_ids), len(rec.product_ids))
    out = evaluate_ranking(rec.score_matrix, targets, [rec.seen])
    out["served"] = rec.served_name
    out["unscored_pairs"] = len(pairs) - len(known)  # a product first seen in the cut-out pair
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="demo,magazine,scientific")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", default=",".join(RUNS), help="comma-separated row labels of RUNS")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "served.json"))
    ap.add_argument("--dirs", default="/tmp/kgrec-served", help="where the run folders go")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {}
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        rows: dict[str, list[dict]] = {}
        for seed in seeds:
            catalog = load_catalog(str(source), seed=seed)
            given, pairs = cut_last(catalog, seed)
            for label in args.runs.split(","):
                cfg = dataclasses.replace(
                    TrainConfig(),
                    data=str(source),
                    split="val-only",
                    baselines=(),
                    seed=seed,
                    quiet=True,
                    out=f"{args.dirs}/{ds}/{label.replace(' ', '').replace('(', '-').replace(')', '')}/{seed}",
                    **RUNS[label],
                )
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                run_training(cfg, given)
                m = score_held_out(cfg.out, pairs)
                m["seconds"] = time.perf_counter() - t0
                rows.setdefault(label, []).append(m)
                print(f"{ds} seed {seed} {label}: ndcg@10 {m['ndcg@10']:.4f} ({m['seconds']:.0f}s)", flush=True)
        results[ds] = {k: {m: _mean_std([r[m] for r in v]) for m in (*METRICS, "seconds")} for k, v in rows.items()}
        results[ds]["held_out_pairs"] = len(pairs)
        save(
            args.out,
            {"seeds": seeds, "results": results},
            f"Served models on cut-out purchases: {', '.join(results)}",
            "\n\n".join(_markdown(name, table, len(seeds)) for name, table in results.items()),
        )


def _mean_std(vals: list[float]) -> dict:
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def _markdown(ds: str, table: dict, n: int) -> str:
    rows = [k for k in table if k != "held_out_pairs"]
    rows.sort(key=lambda k: -table[k]["ndcg@10"]["mean"])

    def cell(row: dict, m: str) -> str:
        return f"{row[m]['mean']:.4f}" + (f" ± {row[m]['std']:.4f}" if n > 1 else "")

    body = [[k] + [cell(table[k], m) for m in METRICS] + [f"{table[k]['seconds']['mean']:.0f}"] for k in rows]
    return (
        f"**{ds}**: each user's last interaction cut out of the export ({table['held_out_pairs']} pairs, the "
        f"last seed's count); models trained with `--split val-only` on the rest and scored as served; mean ± std "
        f"over {n} seed(s).\n\n" + markdown_table(["served model", *METRICS, "seconds"], body)
    )


if __name__ == "__main__":
    main()
