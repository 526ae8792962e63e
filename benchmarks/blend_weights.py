"""How the served blend's path weights are chosen: one coordinate ascent vs the bagged search.

kgrec serves ``z(GNN) + Σ_r w_r · z(P_r)`` with the weights chosen on validation NDCG@10
(``HybridScorer.fit``). This script compares the two ways of choosing them by **nested cross-validation
over the validation users**, so that test is never looked at to make the choice: the validation users are
split into random halves; the weights are chosen on one half (one ascent, or the bagged search: the
ascent on bootstrap resamples of that half, weights averaged, as served; or that mean shrunk by the
resamples' disagreement, tried and not served) and scored on the other; 5 repeats × both
directions. The "GNN alone" column is every weight 0 on the same held-out halves.

It also prints the weights each way chooses on all the validation users, with their validation NDCG@10,
the number of distinct weight vectors ranked, and (on the leave-one-out split, for reference only) test.

    .venv/bin/python benchmarks/blend_weights.py --datasets magazine,demo,scientific --seeds 0
    .venv/bin/python benchmarks/blend_weights.py --datasets magazine --protocol cut

``--protocol cut`` fits on the export with each user's last purchase cut out and ``--split val-only``,
as ``served.py`` does: the validation users are then the ones a shop's run chooses its weights on.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from bench_report import REPO, dataset_source, markdown_table, save
from kgrec.config import TrainConfig
from kgrec.loaders import load_catalog
from kgrec.models.paths import BAG_REPLICATES, FIT_CACHE_BYTES, HybridScorer, _Landscape, _mean_weights
from kgrec.runtime import resolve_device
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import build_prior, fit_model, prepare, scorer

SWEEPS = 2


def shrunk_mean(chosen: list[dict[str, float]], names: list[str]) -> tuple[dict[str, float], float]:
    """Tried, not served: the resamples' mean weight vector ``m`` shrunk towards 0 (the GNN alone) by the
    bootstrap's signal-to-noise ratio ``f = |m|² / (|m|² + tr Σ)`` (``Σ``: the resamples' covariance), as
    a guard against the winner's curse of the ascent's best grid values. Returns ``(f · m, f)``."""
    x = torch.tensor([[w[n] for n in names] for w in chosen], dtype=torch.float64)  # [R, relations]
    m = x.mean(0)
    spread = float(x.var(0).sum()) if len(chosen) > 1 else 0.0
    signal = float(m @ m)
    f = signal / (signal + spread) if signal > 0 else 1.0
    return {n: float(m[k]) * f for k, n in enumerate(names)}, f


def nested_cv(land: _Landscape, repeats: int, replicates: int, seed: int) -> dict[str, list[float]]:
    """Held-out-half validation NDCG@10 of the weights chosen on the other half, per fold."""
    gen = torch.Generator().manual_seed(seed)
    zero = {n: 0.0 for n in land.names}
    out: dict[str, list[float]] = {"GNN alone": [], "one ascent": [], "bagged mean": [], "bagged, shrunk": []}
    n = land.n_users
    for _ in range(repeats):
        perm = torch.randperm(n, generator=gen)
        for fit_on, score_on in ((perm[: n // 2], perm[n // 2:]), (perm[n // 2:], perm[: n // 2])):
            counts = torch.zeros(n, dtype=torch.float64)
            counts[fit_on] = 1.0
            one = land.ascent(counts, SWEEPS)
            chosen = land.resampled(fit_on, replicates, SWEEPS, gen)
            bagged, shrunk = _mean_weights(chosen, land.names), shrunk_mean(chosen, land.names)[0]
            for label, w in (("GNN alone", zero), ("one ascent", one), ("bagged mean", bagged),
                             ("bagged, shrunk", shrunk)):
                out[label].append(float(land.per_user(w)[score_on].mean()))
    return out


def one_run(source: str, seed: int, protocol: str, repeats: int, replicates: int) -> dict:
    cfg = TrainConfig(data=str(source), seed=seed, quiet=True, out="/tmp/kgrec-blend-weights", baselines=(),
                      refit=False, paths=False)
    catalog = None
    if protocol == "cut":
        from served import cut_last

        catalog, _ = cut_last(load_catalog(str(source), seed=seed), seed)
        cfg = dataclasses.replace(cfg, split="val-only")
    prep = prepare(cfg, catalog)
    device = resolve_device("cpu")
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model, _, inputs = fit_model("rgcn", prep, cfg, device)
    gnn_s = time.perf_counter() - t0
    hybrid = HybridScorer(scorer("rgcn", model, inputs, device), build_prior(prep), {})
    t0 = time.perf_counter()
    fit = hybrid.fit(prep.val_index, [prep.train_index], sweeps=SWEEPS, replicates=replicates, seed=seed)
    fit_s = time.perf_counter() - t0
    land = _Landscape(hybrid, list(fit["weights"]), prep.val_index, [prep.train_index], FIT_CACHE_BYTES)
    shrunk, shrink = shrunk_mean(fit["replicates"], land.names) if fit["replicates"] else (fit["weights"], 1.0)
    chosen = {"GNN alone": {n: 0.0 for n in land.names}, "one ascent": fit["ascent"],
              "bagged mean": fit["weights"], "bagged, shrunk": shrunk}
    rows = {}
    for label, w in chosen.items():
        hybrid.weights = dict(w)
        test = float("nan")
        if protocol == "loo":
            test = evaluate_ranking(hybrid, prep.test_index, [prep.train_index, prep.val_index])["ndcg@10"]
        rows[label] = {"weights": w, "val": land.mean(w), "test": test}
    t0 = time.perf_counter()
    cv = nested_cv(land, repeats, replicates, seed)
    cv_s = time.perf_counter() - t0
    for label, folds in cv.items():
        rows[label]["nested_cv"] = statistics.fmean(folds)
        rows[label]["folds"] = folds
    return {"rows": rows, "val_users": land.n_users, "shrink": shrink, "gnn_s": gnn_s, "fit_s": fit_s,
            "nested_cv_s": cv_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="magazine,demo,scientific")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--protocol", choices=("loo", "cut"), default="loo")
    ap.add_argument("--repeats", type=int, default=5, help="random halvings of the validation users")
    ap.add_argument("--replicates", type=int, default=BAG_REPLICATES)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or str(REPO / "benchmarks" / "results" / f"blend_weights_{args.protocol}.json")
    results: dict = {}
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            r = one_run(source, seed, args.protocol, args.repeats, args.replicates)
            results[f"{ds} s{seed}"] = r
            print(f"{ds} seed {seed}: " + ", ".join(
                f"{k} {v['nested_cv']:.4f}" for k, v in r["rows"].items()), flush=True)
    save(out, {"protocol": args.protocol, "repeats": args.repeats, "replicates": args.replicates,
               "results": results},
         f"Blend weights by nested CV over validation users ({args.protocol})", _markdown(results, args))


def _markdown(results: dict, args) -> str:
    cv_rows, fit_rows = [], []
    for key, r in results.items():
        rows = r["rows"]
        cv_rows.append([key, r["val_users"], *(f"{rows[k]['nested_cv']:.4f}" for k in rows), f"{r['shrink']:.2f}",
                        f"{r['fit_s']:.0f}"])
        for label in ("one ascent", "bagged mean", "bagged, shrunk"):
            w = ", ".join(f"{n} {x:.2f}" for n, x in rows[label]["weights"].items())
            test = rows[label]["test"]
            fit_rows.append([key, label, w, f"{rows[label]['val']:.4f}",
                             "—" if test != test else f"{test:.4f}"])
        test0 = rows["GNN alone"]["test"]
        fit_rows.append([key, "GNN alone", "—", f"{rows['GNN alone']['val']:.4f}",
                         "—" if test0 != test0 else f"{test0:.4f}"])
    return (
        f"Mean NDCG@10 on the held-out half of the validation users, weights chosen on the other half "
        f"({args.repeats} random halvings × 2 directions; bagged: {args.replicates} bootstrap resamples of the "
        f"fitting half; shrunk: their mean times |m|² / (|m|² + tr Σ), tried, not served). `shrink on all`: "
        f"that factor from the resamples on all the validation users; `served fit s`: the served search (bagged "
        f"mean) on them.\n\n"
        + markdown_table(["dataset, seed", "validation users", "GNN alone", "one ascent", "bagged mean",
                                "bagged, shrunk (not served)", "shrink on all", "served fit s"], cv_rows)
        + "\n\nThe weights chosen on all the validation users (test: for reference only, never used to choose)."
        "\n\n" + markdown_table(["dataset, seed", "search", "weights", "val NDCG@10", "test NDCG@10"], fit_rows)
    )


if __name__ == "__main__":
    main()
