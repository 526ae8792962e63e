"""What a path relation adds to the served blend, judged on validation: nested CV over the validation users.

kgrec serves ``z(GNN) + Σ_r w_r · z(P_r)`` with the weights chosen on validation by the bagged search
(``HybridScorer.fit``). A weight search can only raise the validation score it is fitted on, so a new
relation "helps" there by construction. This script asks whether it helps on validation users the search
did not see: for each saved run (a ``--no-refit`` run folder, such as ``quality.py``'s
``RUNS/DATASET/rgcn/SEED``), with the GNN embeddings and path relations of its checkpoint, the bagged
search runs on one random half of the validation users, with every relation and without each relation
of ``--drop``, and is scored on the other half (``--repeats`` halvings × 2 directions, the same halves
for every set). It also prints the weights each set gets on all the validation users, with their
validation NDCG@10 and, for reference only (never used to choose), test NDCG@10.

    .venv/bin/python benchmarks/path_ablation.py /tmp/kgrec-bench/scientific/rgcn/0 --drop ease
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch
from blend_weights import SWEEPS, nested_cv

from bench_report import markdown_table, save
from kgrec.config import TrainConfig
from kgrec.models.paths import BAG_REPLICATES, FIT_CACHE_BYTES, HybridScorer, PathPrior, _Landscape
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import prepare


def load_run(run_dir: Path):
    """The run's split, GNN scorer and path prior (its checkpoint's), checked against each other."""
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    if cfg.refit:
        raise SystemExit(f"{run_dir}: a refitted run serves a model trained on validation too; use a --no-refit run")
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    if "paths" not in ckpt:
        raise SystemExit(f"{run_dir}: the run serves no path scores")
    # the split only: it depends on the catalog, the split strategy and the seed, not on the features
    prep = prepare(dataclasses.replace(cfg, text=False, sentiment=False, quiet=True))
    if not (torch.equal(prep.train_index.users, ckpt["train_users"])
            and torch.equal(prep.train_index.items, ckpt["train_items"])):
        raise SystemExit(f"{run_dir}: the split rebuilt from config.json is not the checkpoint's")
    U, I = ckpt["user_emb"], ckpt["item_emb"]
    return prep, (lambda users: U[users] @ I.T), ckpt["paths"]["state"]


def one_run(run_dir: Path, drop: list[str], repeats: int, replicates: int, seed: int) -> dict:
    prep, base, state = load_run(run_dir)
    train, val, test = prep.train_index, prep.val_index, prep.test_index
    sets = {"every relation": list(state)}
    for name in drop:
        if name not in state:
            raise SystemExit(f"{run_dir}: the run has no '{name}' path relation (it has {', '.join(state)})")
        sets[f"without {name}"] = [r for r in state if r != name]
    lands, rows = {}, {}
    for label, names in sets.items():
        prior = PathPrior.from_state(train, {r: state[r] for r in names})
        hybrid = HybridScorer(base, prior, {})
        fit = hybrid.fit(val, [train], sweeps=SWEEPS, replicates=replicates, seed=seed)
        lands[label] = _Landscape(hybrid, list(fit["weights"]), val, [train], FIT_CACHE_BYTES)
        hybrid.weights = dict(fit["weights"])
        rows[label] = {"weights": fit["weights"], "val": fit["val_ndcg@10"],
                       "test": evaluate_ranking(hybrid, test, [train, val])["ndcg@10"]}
    # blend_weights' nested CV on each set: the same seed draws the same halves and resamples for every set
    # (the draws depend only on the number of validation users)
    folds = {label: nested_cv(land, repeats, replicates, seed) for label, land in lands.items()}
    for label in rows:
        rows[label]["folds"] = folds[label]["bagged mean"]
        rows[label]["nested_cv"] = statistics.fmean(rows[label]["folds"])
    gnn_folds = next(iter(folds.values()))["GNN alone"]
    n = next(iter(lands.values())).n_users
    return {"val_users": n, "rows": rows, "gnn_nested_cv": statistics.fmean(gnn_folds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="--no-refit run folders")
    ap.add_argument("--drop", default="ease", help="comma-separated relations to leave out, one at a time")
    ap.add_argument("--repeats", type=int, default=5, help="random halvings of the validation users")
    ap.add_argument("--replicates", type=int, default=BAG_REPLICATES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "path_ablation.json"))
    args = ap.parse_args()
    drop = [d for d in args.drop.split(",") if d]
    results = {}
    for run in args.runs:
        results[run] = one_run(Path(run), drop, args.repeats, args.replicates, args.seed)
        print(run, {k: round(v["nested_cv"], 4) for k, v in results[run]["rows"].items()}, flush=True)
    save(args.out, {"drop": drop, "repeats": args.repeats, "replicates": args.replicates, "results": results},
         f"Path relations by nested CV over validation users: {', '.join('without ' + d for d in drop)}",
         _markdown(results, drop, args))


def _markdown(results: dict, drop: list[str], args) -> str:
    labels = ["every relation"] + [f"without {d}" for d in drop]
    cv, diff, fit = [], [], []
    for run, r in results.items():
        rows = r["rows"]
        cv.append([run, r["val_users"], f"{r['gnn_nested_cv']:.4f}", *(f"{rows[k]['nested_cv']:.4f}" for k in labels)])
        for d in drop:
            deltas = [a - b for a, b in zip(rows["every relation"]["folds"], rows[f"without {d}"]["folds"])]
            diff.append([run, d, f"{statistics.fmean(deltas):+.4f}", f"{sum(x > 0 for x in deltas)}/{len(deltas)}",
                         f"{min(deltas):+.4f} … {max(deltas):+.4f}"])
        for k in labels:
            w = ", ".join(f"{n} {x:.2f}" for n, x in rows[k]["weights"].items())
            fit.append([run, k, w, f"{rows[k]['val']:.4f}", f"{rows[k]['test']:.4f}"])
    return (
        f"Mean NDCG@10 on the held-out half of the validation users, the bagged weights ({args.replicates} "
        f"resamples) chosen on the other half ({args.repeats} random halvings × 2 directions, the same halves "
        f"and resamples for every set of relations); `GNN alone`: every weight 0.\n\n"
        + markdown_table(["run", "validation users", "GNN alone", *labels], cv)
        + "\n\nEvery relation minus the set without one, per fold (how many folds it is ahead in, its range):\n\n"
        + markdown_table(["run", "relation", "mean difference", "folds ahead", "range"], diff)
        + "\n\nThe weights chosen on all the validation users (test: for reference only, never used to choose)."
        "\n\n" + markdown_table(["run", "relations", "weights", "val NDCG@10", "test NDCG@10"], fit)
    )


if __name__ == "__main__":
    main()
