"""What each model makes of the interaction just before the test one: three ways to test the same
leave-one-out split, every model chosen on validation the same way.

- ``held out`` (kgrec's quality tables, the usual leave-one-out protocol): every model is fitted on the
  training pairs and ranks each user's test product from the training history; the validation pair
  (the user's interaction just before the test one) is only excluded from the ranking.
- ``in history``: the same fitted models, but at test time the validation pair is part of the user's
  history, without retraining: EASE^R and item-kNN score from the longer history row, the GNN and
  LightGCN propagate over the graph with the validation edges added (the same features), the path
  scores count it. Popularity is unchanged. This is what a served model does with purchases made
  after its last fit.
- ``refitted``: every model refitted on training + validation pairs (split ``loo+val``) with what
  validation chose (epoch count, temperature, EASE^R's λ, the path weights), then tested: what
  ``python train.py`` serves after its refit (on every pair) would score on a purchase it had not seen.

Test NDCG@10, full ranking, mean over seeds, and for the GNN alone and the served blend the paired
95 % bootstrap interval of their difference to EASE^R over users (as in ``quality.py``).

    .venv/bin/python benchmarks/history_protocols.py --datasets magazine --seeds 0,1,2

``--back N`` runs the same three protocols N steps back, without ever reading a test pair: each user's
last N pairs are removed from the export first (``Catalog.steps_back``). At 1 the validation pair
becomes the test and the pair before it the validation; a choice studied there is made without the
test set, but that test is the validation on which kgrec's defaults were chosen. At 2 the lab's test
and validation pairs are training pairs of the full split: no choice of kgrec's defaults was made on
them, so a new lever is not compared with defaults tuned on the very pairs it is scored on.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from quality import LABELS, paired_interval

from bench_report import dataset_source, markdown_table, save
from kgrec.config import GNN_MODELS, TRAINED_MODELS, TrainConfig
from kgrec.data.split import WITH_VAL
from kgrec.models.paths import HybridScorer
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import build_prior, fit_model, load_source, prepare, scorer

PROTOCOLS = ("held out", "in history", "refitted")
REFERENCE = "ease"


def _score_with_history(name: str, model, inputs: tuple, prep_hist, device: torch.device):
    """``name``'s fitted ``model`` scoring from the histories of ``prep_hist`` (training + validation
    pairs) without retraining. The model's history row or graph is replaced in place, so its earlier
    scorer must have been used up."""
    if name in GNN_MODELS:  # the features stay the fitted ones; the graph gains the validation edges
        return scorer(name, model, (inputs[0], prep_hist.data.to(device).edge_index_dict), device)
    if name in TRAINED_MODELS:  # LightGCN: its propagation graph
        model.set_graph(prep_hist.train_users.to(device), prep_hist.train_items.to(device))
        return scorer(name, model, inputs, device)
    if hasattr(model, "history"):  # EASE^R, item-kNN: the user's history row
        model.history = prep_hist.train_index
    return scorer(name, model, inputs, device)


def run_seed(cfg: TrainConfig, models: list[str], device: torch.device, back: int = 0
             ) -> dict[str, dict[str, dict]]:
    """``{protocol: {row: {"ndcg@10": mean, "users": [n], "ndcg": [n]}}}`` for one split (seed); ``back``:
    that many steps back, on the export without each user's last ``back`` pairs."""
    prep = prepare(cfg, load_source(cfg).steps_back(back, cfg.split, cfg.seed))
    prep_hist = prepare(cfg, prep.catalog, split=cfg.split + WITH_VAL)
    if prep_hist.data.num_nodes != prep.data.num_nodes:  # "in history" pairs the fitted features with its graph
        raise AssertionError("the two splits' graphs have different nodes")
    out: dict[str, dict[str, dict]] = {p: {} for p in PROTOCOLS}

    def record(protocol: str, row: str, score, targets, exclude) -> None:
        per: dict = {}
        m = evaluate_ranking(score, targets, exclude, per_user=per)
        out[protocol][row] = {"ndcg@10": m["ndcg@10"], "users": per["users"].numpy(),
                              "ndcg": per["ndcg@10"].double().numpy()}
        print(f"  {protocol:>10} {row:>12}: test ndcg@10 {m['ndcg@10']:.4f}", flush=True)

    held = (prep.test_index, [prep.train_index, prep.val_index])
    later = (prep_hist.test_index, [prep_hist.train_index])
    for name in models:
        t0 = time.perf_counter()
        model, info, inputs = fit_model(name, prep, cfg, device)
        score = scorer(name, model, inputs, device)
        record("held out", name, score, *held)
        weights = None
        if name in GNN_MODELS and cfg.paths:
            hybrid = HybridScorer(score, build_prior(prep), {})
            weights = hybrid.fit(prep.val_select, [prep.train_index])["weights"]  # as the pipeline does
            record("held out", f"{name}+paths", hybrid, *held)
        score_h = _score_with_history(name, model, inputs, prep_hist, device)
        record("in history", name, score_h, *later)
        prior_hist = None
        if weights is not None:
            prior_hist = build_prior(prep_hist)
            record("in history", f"{name}+paths", HybridScorer(score_h, prior_hist, weights), *later)
        refit, _, refit_inputs = fit_model(name, prep_hist, cfg, device, selected=info)
        score_r = scorer(name, refit, refit_inputs, device)
        record("refitted", name, score_r, *later)
        if weights is not None:
            record("refitted", f"{name}+paths", HybridScorer(score_r, prior_hist, weights), *later)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="magazine")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="rgcn,ease,itemknn,popularity",
                    help="the GNN first (its +paths row is the served blend), then baselines; ease is required")
    ap.add_argument("--back", type=int, default=0,
                    help="steps back: the export without each user's last N pairs (1: validation becomes the test)")
    ap.add_argument("--config", default="{}",
                    help='settings other than the defaults, as in a run\'s config.json: \'{"history_tower": 1}\'')
    ap.add_argument("--out", default="benchmarks/results/history_protocols.json")
    args = ap.parse_args()
    models = args.models.split(",")
    if REFERENCE not in models:
        ap.error(f"--models must include {REFERENCE} (the reference of the intervals)")
    seeds = [int(s) for s in args.seeds.split(",")]
    base = TrainConfig.from_dict(json.loads(args.config))
    device = torch.device("cpu")
    data, sections = {}, []
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        runs = []
        for seed in seeds:
            print(f"{ds} seed {seed}", flush=True)
            cfg = replace(base, data=source, seed=seed, quiet=True, refit=False)
            runs.append(run_seed(cfg, models, device, args.back))
        rows = list(runs[0]["held out"])
        table = {p: {r: float(np.mean([run[p][r]["ndcg@10"] for run in runs])) for r in rows} for p in PROTOCOLS}
        intervals = {}
        for p in PROTOCOLS:
            for r in rows:
                if r in GNN_MODELS or r.endswith("+paths"):
                    diffs = [run[p][r]["ndcg"] - run[p][REFERENCE]["ndcg"] for run in runs]
                    joint = all(np.array_equal(run[p][r]["users"], runs[0][p][r]["users"]) for run in runs)
                    intervals[f"{p}: {r}"] = paired_interval(diffs, joint)
        data[ds] = {"seeds": seeds, "test ndcg@10": table,
                    "minus_ease": {k: {"mean": m, "low": lo, "high": hi} for k, (m, lo, hi) in intervals.items()}}
        md = markdown_table(["model", *PROTOCOLS],
                            [[LABELS.get(r, r), *(f"{table[p][r]:.4f}" for p in PROTOCOLS)] for r in rows])
        users = runs[0]["held out"][REFERENCE]["users"].size
        lines = []
        for key, (m, lo, hi) in intervals.items():
            protocol, row = key.split(": ")
            lines.append(f"- {protocol}: {LABELS.get(row, row).replace('**', '')} − EASE^R: "
                         f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        sections.append(f"**{ds}**: test NDCG@10, mean over seeds {seeds} ({users:,} test users)\n\n{md}\n\n"
                        f"Difference to EASE^R with its 95 % paired-bootstrap interval over users:\n\n"
                        + "\n".join(lines))
    lab = f", {args.back} step(s) back: each user's last {args.back} pairs removed" if args.back else ""
    title = f"The interaction before the test one: held out, in the history, refitted ({args.datasets}{lab})"
    save(args.out, data, title, "\n\n".join(sections))


if __name__ == "__main__":
    main()
