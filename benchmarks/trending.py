"""Trending (popularity decayed with a half-life chosen on validation) next to plain popularity on the
time split (``--split time``: a global time cut, so the test interactions are the latest ones), where
recency should matter most. Test NDCG@10 / Recall@10 with full ranking.

    .venv/bin/python benchmarks/trending.py --datasets demo,magazine
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench_report import dataset_source, markdown_table, save
from kgrec.config import TrainConfig
from kgrec.train.pipeline import run_training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="demo,magazine")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "trending.json"))
    args = ap.parse_args()
    rows = []
    for ds in args.datasets.split(","):
        source = dataset_source(ds)
        if source is None:
            continue
        cfg = TrainConfig(data=source, model="popularity", baselines=("trending",), split="time",
                          seed=args.seed, quiet=True, paths=False, refit=False, out=f"/tmp/kgrec-trending/{ds}")
        metrics = run_training(cfg)
        for name in ("popularity", "trending"):
            m = metrics["models"][name]
            h = m.get("half_life_days", "")
            rows.append({"dataset": ds, "model": name, "half-life (days, on validation)":
                         ("none" if h is None else h) if name == "trending" else "",
                         "val ndcg@10": round(m["val"]["ndcg@10"], 4),
                         "test ndcg@10": round(m["test"]["ndcg@10"], 4),
                         "test recall@10": round(m["test"]["recall@10"], 4)})
    headers = list(rows[0])
    save(args.out, {"rows": rows}, "Trending vs popularity on the time split",
         markdown_table(headers, [[r[h] for h in headers] for r in rows]))


if __name__ == "__main__":
    main()
