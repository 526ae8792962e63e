"""The GNN's levers, one at a time, on one split: validation NDCG@10 (what kgrec's choices are made on)
and test NDCG@10 (recorded, never used to choose), next to EASE^R and LightGCN on the same split.

Each row changes one thing from the default R-GCN (cosine scores, a softmax over every product at a
temperature chosen on validation from 0.15 and 0.4, a text tower, symmetric per-relation normalisation,
every knowledge-graph relation, review sentiment). No path scores and no refit: the GNN alone.

    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seed 0
    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seeds 0,1,2 \
        --only default,no-recent --baselines ''   # one lever's ablation over 3 seeds
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
from kgrec.train.pipeline import fit_model, prepare, scorer

KG_RELATIONS = tuple(e.name for e in load_schema().edges.values() if not e.target)


def variants(base: TrainConfig) -> dict[str, tuple[str, TrainConfig]]:
    o = base.optim
    return {
        "default": ("the default R-GCN", base),
        "tau1": ("temperature 1.0 (the earlier default)", replace(base, optim=replace(o, temperature=(1.0,)))),
        "tau0.15": ("temperature 0.15 only", replace(base, optim=replace(o, temperature=(0.15,)))),
        "tau0.4": ("temperature 0.4 only", replace(base, optim=replace(o, temperature=(0.4,)))),
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
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--seeds", "--seed", default="0",
                    help="comma-separated; with more than one, each variant also gets a mean ± std row")
    ap.add_argument("--only", help="comma-separated variant names")
    ap.add_argument("--baselines", default="ease,lightgcn", help="reference rows on the same split ('' for none)")
    ap.add_argument("--out", help="JSON to write (default benchmarks/results/gnn_variants_<data>.json)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    device = resolve_device("cpu")
    preps: dict[tuple, object] = {}  # one split and feature set per (seed, text, sentiment, relations)

    def prep_for(cfg: TrainConfig):
        key = (cfg.seed, cfg.text, cfg.sentiment, cfg.relations, cfg.min_support, cfg.recent_products)
        if key not in preps:
            preps[key] = prepare(cfg)
        return preps[key]

    def measure(name: str, cfg: TrainConfig) -> dict:
        prep = prep_for(cfg)
        t0 = time.perf_counter()
        model, info, inputs = fit_model(name if name in ("ease", "lightgcn") else cfg.model, prep, cfg, device)
        score = scorer(name if name in ("ease", "lightgcn") else cfg.model, model, inputs, device)
        val = evaluate_ranking(score, prep.val_index, [prep.train_index])["ndcg@10"]
        test = evaluate_ranking(score, prep.test_index, [prep.train_index, prep.val_index]).get("ndcg@10")
        row = {"val ndcg@10": round(val, 4), "test ndcg@10": round(test, 4) if test is not None else "",
               "epochs": info.get("epochs", 0), "temperature": info.get("temperature", ""),
               "seconds": round(time.perf_counter() - t0)}
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
    save(out, {"data": args.data, "seeds": seeds, "rows": rows}, f"GNN levers on {label} ({which})",
         markdown_table(headers, [[r[h] for h in headers] for r in rows]))


def _means(rows: list[dict]) -> list[dict]:
    """One row per variant: mean ± std over its seeds of validation and test NDCG@10."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        row = {"variant": name, "what": mine[0]["what"], "seed": "mean"}
        for key in ("val ndcg@10", "test ndcg@10"):
            values = np.array([r[key] for r in mine if r[key] != ""], dtype=float)
            row[key] = f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else ""
        row.update({"epochs": "", "temperature": "", "seconds": sum(r["seconds"] for r in mine)})
        out.append(row)
    return out


if __name__ == "__main__":
    main()
