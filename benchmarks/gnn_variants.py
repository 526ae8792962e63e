"""R-GCN variants on one split: validation NDCG@10 (what choices are made on) and test NDCG@10
(recorded only, never used to choose). Prints one line per variant.

    .venv/bin/python benchmarks/gnn_variants.py ../shared/datasets/amazon-magazine-2018 --seed 0
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

from kgrec.config import TrainConfig
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.loop import resolve_device
from kgrec.train.pipeline import fit_model, prepare, scorer


def variants(base: TrainConfig) -> dict[str, TrainConfig]:
    return {
        "default": base,
        "no-user": replace(base, id_embeddings="no-user"),
        "none": replace(base, id_embeddings="none"),
        "layers3": replace(base, layers=3),
        "hidden128": replace(base, hidden=128),
        "dropout0.3": replace(base, dropout=0.3),
        "bpr": replace(base, optim=replace(base.optim, loss="bpr")),
        "lr0.001": replace(base, optim=replace(base.optim, lr=0.001)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated variant names")
    args = ap.parse_args()
    base = TrainConfig(data=args.data, seed=args.seed, quiet=True, out="/tmp/kgrec-variants", baselines=())
    prep = prepare(base)  # one split and one feature set shared by every variant
    device = resolve_device("cpu")
    chosen = variants(base)
    for name in (args.only.split(",") if args.only else chosen):
        cfg = chosen[name]
        t0 = time.perf_counter()
        model, info, inputs = fit_model(cfg.model, prep, cfg, device)
        score = scorer(cfg.model, model, inputs, device)
        val = evaluate_ranking(score, prep.val_index, [prep.train_index])["ndcg@10"]
        test = evaluate_ranking(score, prep.test_index, [prep.train_index, prep.val_index]).get("ndcg@10", float("nan"))
        print(f"{name:<12} val {val:.4f}  test {test:.4f}  epochs {info['epochs']}  {time.perf_counter() - t0:.0f}s",
              flush=True)


if __name__ == "__main__":
    main()
