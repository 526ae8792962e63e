"""The GNN's levers, one at a time, on one split: validation NDCG@10 (what kgrec's choices are made on)
and test NDCG@10 (recorded, never used to choose), next to EASE^R and LightGCN on the same split.

Each row changes one thing from the default R-GCN (cosine scores, a softmax over every product at a
temperature chosen on validation from 0.15 and 0.4, a text tower, symmetric per-relation normalisation,
every knowledge-graph relation, review sentiment). No path scores and no refit: the GNN alone.

    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seed 0
    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seeds 0,1,2 \
        --only default,no-recent --baselines ''   # one lever's ablation over 3 seeds
    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seeds 0,1,2 \
        --only default,no-recent,recent1,recent5 --baselines '' --paths   # and the served blend's

``--back 2`` measures on the export without each user's last two pairs: the table's test pairs are
then training pairs of the full split, on which no choice of kgrec's defaults was made (they were all
made on the validation pairs), which a lever compared with the tuned defaults needs (see
``history_protocols.py``).

With ``--paths`` each GNN row also gets the served blend (the GNN plus path scores whose weights are
chosen on validation, as ``train.py`` serves it without the refit): its validation NDCG@10 (what the
weight search reached) and test NDCG@10.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench_report import markdown_table, save
from kgrec.config import TrainConfig
from kgrec.data.schema import load_schema
from kgrec.runtime import resolve_device
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import build_prior, fit_model, load_source, prepare, scorer

KG_RELATIONS = tuple(e.name for e in load_schema().edges.values() if not e.target)


def variants(base: TrainConfig) -> dict[str, tuple[str, TrainConfig]]:
    o = base.optim
    return {
        "default": ("the default R-GCN", base),
        "tau1": ("temperature 1.0 (the earlier default)", replace(base, optim=replace(o, temperature=(1.0,)))),
        "tau0.15": ("temperature 0.15 only", replace(base, optim=replace(o, temperature=(0.15,)))),
        "tau0.4": ("temperature 0.4 only", replace(base, optim=replace(o, temperature=(0.4,)))),
        "rung0": ("the temperature search trains every candidate to its end (--search-rung 0)",
                  replace(base, optim=replace(o, search_rung=0))),
        "sampled256": ("256 shared uniform negatives instead of every product",
                       replace(base, optim=replace(o, negatives=256))),
        "hardneg": ("64 negatives per example, half from the positive's category (the earlier default)",
                    replace(base, optim=replace(o, negatives=64, shared_negatives=False, hard_negative_ratio=0.5))),
        "bpr": ("BPR loss instead of the softmax", replace(base, optim=replace(o, loss="bpr"))),
        "no-text": ("without the text tower (ids and statistics only)", replace(base, text=False)),
        "no-sentiment": ("without review sentiment", replace(base, sentiment=False)),
        "no-kg": ("without knowledge-graph relations (interactions only)", replace(base, relations=())),
        "layers3": ("3 layers", replace(base, layers=3)),
        "hidden64": ("64 dimensions (the earlier default)", replace(base, hidden=64)),
        "hidden128": ("128 dimensions", replace(base, hidden=128)),
        "support1": ("derived edges (co_interacted, followed_by) from a single shopper too (the first default)",
                     replace(base, min_support=1)),
        "support2": ("derived edges from two shoppers too (the default before 3)", replace(base, min_support=2)),
        "bf16": ("bf16 products in the loss and bf16 autocast (--precision bf16; what CUDA runs by default)",
                 replace(base, optim=replace(o, precision="bf16"))),
        "no-sequence": ("without the followed_by relation (consecutive training products)",
                        replace(base, relations=tuple(r for r in KG_RELATIONS if r != "followed_by"))),
        "no-recent": ("without the recently_chose relation (each user's last training products)",
                      replace(base, relations=tuple(r for r in KG_RELATIONS if r != "recently_chose"))),
        "recent1": ("recently_chose with each user's last product only", replace(base, recent_products=1)),
        "recent5": ("recently_chose with each user's last 5 products", replace(base, recent_products=5)),
        "no-user-ids": ("users without a learnable id embedding: a user is what they chose (--id-embeddings "
                        "no-user)", replace(base, id_embeddings="no-user")),
        "dropout0.1": ("dropout 0.1 on the GNN's input features", replace(base, dropout=0.1)),
        "layers1": ("1 layer", replace(base, layers=1)),
        "hgt": ("the HGT encoder (type-specific attention) instead of the R-GCN, every other default kept",
                replace(base, model="hgt")),
        "history-tower": ("the recent-history tower, starting weight 1 (--history-tower 1)",
                          replace(base, history_tower=1.0)),
        **{f"wd{name}": (f"Adam weight decay {name} (L2 on every weight, ids included)",
                         replace(base, optim=replace(o, weight_decay=float(name))))
           for name in ("1e-6", "1e-5", "1e-4")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--seeds", "--seed", default="0",
                    help="comma-separated; with more than one, each variant also gets a mean ± std row")
    ap.add_argument("--only", help="comma-separated variant names")
    ap.add_argument("--baselines", default="ease,lightgcn", help="reference rows on the same split ('' for none)")
    ap.add_argument("--paths", action="store_true",
                    help="also the served blend of each GNN row (path weights chosen on validation)")
    ap.add_argument("--back", type=int, default=0,
                    help="steps back: the export without each user's last N pairs (2: the table's test pairs are "
                         "training pairs of the full split, on which no default was chosen)")
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/gnn_variants_<data>.json)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    device = resolve_device("cpu")
    preps: dict[tuple, object] = {}  # one split and feature set per (seed, text, sentiment, relations)

    def prep_for(cfg: TrainConfig):
        key = (cfg.seed, cfg.text, cfg.sentiment, cfg.relations, cfg.min_support, cfg.recent_products)
        if key not in preps:
            preps[key] = prepare(cfg, load_source(cfg).steps_back(args.back, cfg.split, cfg.seed))
        return preps[key]

    def measure(name: str, cfg: TrainConfig) -> dict:
        prep = prep_for(cfg)
        t0 = time.perf_counter()
        model, info, inputs = fit_model(name if name in ("ease", "lightgcn") else cfg.model, prep, cfg, device)
        score = scorer(name if name in ("ease", "lightgcn") else cfg.model, model, inputs, device)
        val = evaluate_ranking(score, prep.val_index, [prep.train_index])["ndcg@10"]
        test = evaluate_ranking(score, prep.test_index, [prep.train_index, prep.val_index]).get("ndcg@10")
        row = {"val ndcg@10": round(val, 4), "test ndcg@10": round(test, 4) if test is not None else ""}
        if args.paths:
            row.update(_served(name, score, prep))
        row.update({"epochs": info.get("epochs", 0), "temperature": info.get("temperature", ""),
                    "seconds": round(time.perf_counter() - t0)})
        print(f"{name:<14} {row}", flush=True)
        return row

    rows = []
    references = {"ease": "EASE^R, λ on validation", "lightgcn": "LightGCN, its paper's recipe"}
    for seed in seeds:
        base = TrainConfig(data=args.data, seed=seed, quiet=True, out="/tmp/kgrec-variants", baselines=(),
                           refit=False, paths=False)
        chosen = variants(base)
        for name in (args.only.split(",") if args.only else chosen):
            what, cfg = chosen[name]
            rows.append({"variant": name, "what": what, "seed": seed, **measure(name, cfg)})
        for name in filter(None, args.baselines.split(",")):
            rows.append({"variant": name, "what": references[name], "seed": seed, **measure(name, base)})
        preps.clear()
    if len(seeds) > 1:
        rows += _means(rows)
    headers = list(rows[0])
    label = Path(args.data).name
    out = args.out or str(Path(__file__).parent / "results" / f"gnn_variants_{label}.json")
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {args.seeds}, then the mean ± std of each"
    if args.back:
        which += f"; {args.back} step(s) back: each user's last {args.back} pairs removed"
    save(out, {"data": args.data, "seeds": seeds, "rows": rows}, f"GNN levers on {label} ({which})",
         markdown_table(headers, [[r[h] for h in headers] for r in rows]))


SERVED = ("served val ndcg@10", "served test ndcg@10")


def _served(name: str, score, prep) -> dict:
    """The served blend of a GNN row: path weights fitted on validation NDCG@10, then its test NDCG@10
    (empty for the reference rows, which are not blended)."""
    from kgrec.models.paths import HybridScorer

    if name in ("ease", "lightgcn"):
        return dict.fromkeys(SERVED, "")
    hybrid = HybridScorer(score, build_prior(prep), {})
    fit = hybrid.fit(prep.val_select, [prep.train_index])  # as the pipeline chooses its weights
    test = evaluate_ranking(hybrid, prep.test_index, [prep.train_index, prep.val_index]).get("ndcg@10")
    return {SERVED[0]: round(fit["val_ndcg@10"], 4), SERVED[1]: round(test, 4) if test is not None else ""}


def _means(rows: list[dict]) -> list[dict]:
    """One row per variant: mean ± std over its seeds of validation and test NDCG@10 (and of the served
    blend's, when the rows have them)."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        row = {"variant": name, "what": mine[0]["what"], "seed": "mean"}
        for key in ("val ndcg@10", "test ndcg@10", *(k for k in SERVED if k in mine[0])):
            values = np.array([r[key] for r in mine if r[key] != ""], dtype=float)
            row[key] = f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else ""
        row.update({"epochs": "", "temperature": "", "seconds": sum(r["seconds"] for r in mine)})
        out.append(row)
    return out


if __name__ == "__main__":
    main()
