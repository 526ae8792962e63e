"""Quality benchmark: models × datasets × test metrics, mean ± std over seeds, all models trained in
the same run on the same split. Prints a table and writes JSON.

    .venv/bin/python benchmarks/quality.py --datasets demo,magazine,scientific --seeds 0,1,2 \
        --out benchmarks/results/quality.json

Datasets: ``demo`` (synthetic; ``--scale`` sets its size), and ``magazine`` / ``scientific`` from
../shared/datasets (skipped with a note when absent). Extra ablation rows: ``--ablations`` adds R-GCN
without text, without sentiment, and without KG relations (interactions only). Every GNN run also
reports ``MODEL+paths`` (the GNN plus validation-weighted knowledge-graph path scores, what kgrec
serves) and ``paths`` (the path scores alone), see kgrec.models.paths.

Under each table: the test NDCG@10 difference of the GNN alone and of the served model to the best
baseline, with a 95 % paired-bootstrap interval over users (from each run's ``test_per_user.npz``):
with a few hundred users a difference of 0.01–0.02 can be noise, and the table says which are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import time
from pathlib import Path

import numpy as np

from bench_report import REPO, dataset_source, markdown_table, save
from kgrec.config import BASELINES, TrainConfig, add_train_arguments, config_from_args
from kgrec.train.pipeline import PER_USER_FILE, load_per_user, run_training

# the table's column order (kgrec.config.METRICS has them all)
METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20", "mrr", "coverage@10")
ABLATIONS = {
    "rgcn-no-text": {"text": False},
    "rgcn-no-sentiment": {"sentiment": False},
    "rgcn-no-kg": {"relations": ()},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="demo,magazine,scientific")
    ap.add_argument("--models", default="rgcn,hgt", help="GNNs to train (the first of each seed with the --baselines)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="size of the demo shop (65 ≈ 1.1M interactions); its table is named 'demo@SCALE' unless 1")
    ap.add_argument("--baselines", default=",".join(TrainConfig().baselines),
                    help="baselines trained with the first GNN of each seed (default: kgrec's); '' for none")
    ap.add_argument("--train-flags", default="",
                    help="train.py flags for every run, in one quoted string (e.g. '--temperature 0.4'); the "
                         "benchmark's own settings (data, model, baselines, seed, refit off, ...) still apply")
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument(
        "--neighbours",
        help="also train R-GCN on neighbour-sampled mini-batches with these fan-outs "
        "(e.g. 10,10; needs pyg-lib or torch-sparse): the rgcn-sampled rows",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality.json"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="/tmp/kgrec-bench", help="where the run folders go: RUNS/DATASET/MODEL/SEED")
    ap.add_argument("--reuse", action="store_true",
                    help="take the metrics of a run folder whose config.json has this run's settings instead of "
                         "training again (to resume a long run; the code version that wrote it is not checked)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    flags = argparse.ArgumentParser(prog="--train-flags", add_help=False)
    add_train_arguments(flags)
    base = config_from_args(flags.parse_args(shlex.split(args.train_flags)))
    results: dict = {}
    paired: dict = {}
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        scale = args.scale if ds == "demo" else 1.0
        if scale != 1.0:
            ds = f"demo@{scale:g}"
        rows: dict[str, list[dict]] = {}
        per_user: dict[str, dict[int, dict]] = {}  # row → seed → {"users", "ndcg"}
        runs = [(m, {}, True) for m in args.models.split(",")]
        if args.ablations:
            runs += [(name, over, False) for name, over in ABLATIONS.items()]
        if args.neighbours:
            from kgrec.train.sampling import parse_fanout, require_neighbour_sampler

            require_neighbour_sampler()
            optim = dataclasses.replace(base.optim, neighbours=parse_fanout(args.neighbours))
            runs.append(("rgcn-sampled", {"optim": optim}, False))
        for seed in seeds:
            for i, (name, over, with_baselines) in enumerate(runs):
                model = name.split("-")[0]
                baselines = tuple(b for b in args.baselines.split(",") if b) if (with_baselines and i == 0) else ()
                cfg = dataclasses.replace(
                    base,
                    data=str(source),
                    scale=scale,
                    model=model,
                    baselines=baselines,
                    seed=seed,
                    device=args.device,
                    out=f"{args.runs}/{ds}/{name}/{seed}",
                    quiet=True,
                    refit=False,  # the test metrics are those of the model fitted on the training split
                    paths_ablation=True,  # the "paths alone" row of every table
                    **over,
                )
                t0 = time.perf_counter()
                metrics = _reusable(cfg) if args.reuse else None
                if metrics is not None:
                    print(f"{ds} seed {seed} {name}: reusing {cfg.out}", flush=True)
                else:
                    metrics = run_training(cfg)
                for mname, m in metrics["models"].items():
                    if mname == "paths" and i > 0:
                        continue  # the same path scores on the same split: counted once per seed
                    key = name + mname[len(model) :] if mname.startswith(model) else mname
                    rows.setdefault(key, []).append(
                        {**m["test"], "epochs": m["epochs"], "train_seconds": m["train_seconds"]}
                    )
                    saved = Path(cfg.out) / PER_USER_FILE
                    if saved.is_file():
                        arrays = load_per_user(saved)
                        if mname in arrays:
                            per_user.setdefault(key, {})[seed] = {"users": arrays["users"], "ndcg": arrays[mname]}
                print(f"{ds} seed {seed} {name}: done in {time.perf_counter() - t0:.0f}s", flush=True)
        results[ds] = {k: _summary(v) for k, v in rows.items()}
        paired[ds] = _paired(results[ds], per_user, seeds)
        # written after every dataset, so a long run keeps what it finished
        save(
            args.out,
            {"seeds": seeds, "results": results, "paired": paired},
            f"Quality: {', '.join(results)}",
            "\n\n".join(_markdown(name, table, len(seeds)) + _paired_markdown(paired.get(name))
                         for name, table in results.items()),
        )


RESAMPLES = 10_000


def paired_interval(diffs: list[np.ndarray], joint: bool, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean NDCG@10 difference of two models and its 95 % paired-bootstrap interval.

    ``diffs``: one array per seed of per-user differences (model A − model B on the same users). With
    ``joint`` (every seed evaluated the same users, in the same order: a fixed split of a real dataset)
    each bootstrap sample draws one set of users and averages it over the seeds, as the seeds' errors on
    one user are not independent; otherwise (the demo shop, a new catalog per seed) the users of each
    seed are drawn independently. Returns ``(mean, low, high)``."""
    rng = np.random.default_rng(seed)
    if joint:
        per_user = np.mean(diffs, axis=0)  # [n]
        idx = rng.integers(0, per_user.size, (resamples, per_user.size))
        boot = per_user[idx].mean(1)
        mean = float(per_user.mean())
    else:
        boot = np.mean([d[rng.integers(0, d.size, (resamples, d.size))].mean(1) for d in diffs], axis=0)
        mean = float(np.mean([d.mean() for d in diffs]))
    low, high = np.percentile(boot, [2.5, 97.5])
    return mean, float(low), float(high)


def _paired(table: dict, per_user: dict[str, dict[int, dict]], seeds: list[int]) -> dict:
    """The GNN alone and the served model against the best baseline (by mean test NDCG@10), paired per user
    over the seeds that saved per-user metrics (``test_per_user.npz``)."""
    base = [k for k in table if k in BASELINES and k in per_user]
    if not base:
        return {}
    best = max(base, key=lambda k: table[k]["ndcg@10"]["mean"])
    out = {}
    for row in [k for k in table if k not in BASELINES and k != "paths" and k in per_user]:
        common = [s for s in seeds if s in per_user[row] and s in per_user[best]]
        if not common:
            continue
        a, b = [per_user[row][s] for s in common], [per_user[best][s] for s in common]
        if any(not np.array_equal(x["users"], y["users"]) for x, y in zip(a, b)):
            raise AssertionError(f"{row} and {best} were tested on different users")
        joint = all(np.array_equal(a[0]["users"], x["users"]) for x in a)
        mean, low, high = paired_interval([x["ndcg"] - y["ndcg"] for x, y in zip(a, b)], joint)
        out[row] = {"against": best, "difference": mean, "low": low, "high": high, "seeds": common,
                    "users": int(a[0]["users"].size), "joint": joint}
    return out


def _paired_markdown(paired: dict | None) -> str:
    if not paired:
        return ""
    lines = [f"- {LABELS.get(row, row).replace('**', '')} − {LABELS.get(p['against'], p['against'])}: "
             f"{p['difference']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}]" for row, p in paired.items()]
    any_row = next(iter(paired.values()))
    how = ("the same users in every seed, resampled together" if any_row["joint"]
           else "each seed's users resampled on their own")
    return (f"\n\nTest NDCG@10 difference to the best baseline, mean over seeds {any_row['seeds']}, with its 95 % "
            f"paired-bootstrap interval over {any_row['users']:,} users ({RESAMPLES:,} resamples; {how}); an "
            f"interval that contains 0 is no evidence of a difference:\n\n" + "\n".join(lines))


# the settings that decide a run's metrics (not where it is written or how much it prints)
SAME_RUN_KEYS = ("data", "format", "mapping", "scale", "locale", "model", "baselines", "split", "seed", "text",
                 "sentiment", "sentiment_method", "relations", "min_support", "recent_products", "id_embeddings",
                 "hidden", "layers", "dropout", "paths", "refit", "selection_users", "optim")


def _reusable(cfg: TrainConfig) -> dict | None:
    """The metrics of ``cfg.out`` when that folder holds a finished run with ``cfg``'s settings."""
    folder = Path(cfg.out)
    try:
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = json.loads(json.dumps(cfg.to_dict()))
    # a run records the temperature it chose from the grid
    grid = wanted["optim"].pop("temperature")
    saved["optim"] = dict(saved.get("optim") or {})
    chosen = saved["optim"].pop("temperature", None)
    same = all(saved.get(k) == wanted.get(k) for k in SAME_RUN_KEYS) and chosen and set(chosen) <= set(grid)
    return metrics if same else None


LABELS = {
    "rgcn+paths": "**R-GCN + paths (kgrec default)**",
    "hgt+paths": "HGT + paths",
    "paths": "paths alone (no GNN)",
    "rgcn": "R-GCN alone",
    "hgt": "HGT alone",
    "itemknn": "item-kNN",
    "ease": "EASE^R (λ on validation)",
    "lightgcn": "LightGCN (paper recipe)",
    "popularity": "popularity",
}


def _summary(runs: list[dict]) -> dict:
    out = {}
    for key in METRICS + ("epochs", "train_seconds"):
        vals = [r[key] for r in runs if key in r]
        out[key] = {
            "mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "n": len(vals),
        }
    return out


def _markdown(ds: str, table: dict, n: int) -> str:
    """One dataset's table, best NDCG@10 first; ablation rows (``rgcn-no-*``) after the models."""

    def label(name: str) -> str:
        for prefix, what in (
            ("rgcn-no-text", "ablation: {} without product text"),
            ("rgcn-no-sentiment", "ablation: {} without sentiment"),
            ("rgcn-no-kg", "ablation: {} without KG relations"),
            ("rgcn-sampled", "{}, neighbour-sampled mini-batches"),
        ):
            if name.startswith(prefix):
                base = LABELS[name.replace(prefix, "rgcn")].replace("**", "").replace(" (kgrec default)", "")
                return what.format(base)
        return LABELS.get(name, name)

    def cell(row: dict, m: str) -> str:
        return f"{row[m]['mean']:.4f}" + (f" ± {row[m]['std']:.4f}" if row[m]["n"] > 1 and row[m]["std"] > 0 else "")

    order = sorted(table, key=lambda k: ("-no-" in k, "-sampled" in k, -table[k]["ndcg@10"]["mean"]))
    rows = [
        [label(k)] + [cell(table[k], m) for m in METRICS[:4]] + [f"{table[k]['train_seconds']['mean']:.1f}"]
        for k in order
    ]
    return (
        f"**{ds}**: test metrics, full ranking, mean ± std over {n} seed(s) (no ± where the model "
        f"is deterministic or ran once).\n\n" + markdown_table(["model", *METRICS[:4], "train s"], rows)
    )


if __name__ == "__main__":
    main()
