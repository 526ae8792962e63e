"""The quickstart job: ``python train.py --quiet`` with the defaults (the synthetic demo shop, R-GCN +
paths and the three baselines), timed end to end in a fresh process, with its test metrics.

    .venv/bin/python benchmarks/quickstart.py

The text cache is used as it is: the first run on a machine also encodes the demo texts.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import markdown_table, save

REPO = Path(__file__).resolve().parents[1]
LABELS = {"rgcn+paths": "**R-GCN + paths (served)**", "paths": "paths alone", "rgcn": "R-GCN alone",
          "lightgcn": "LightGCN", "ease": "EASE^R", "itemknn": "item-kNN", "popularity": "popularity",
          "trending": "trending"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "quickstart.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "train.py", "--quiet", "--out", tmp], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        metrics = json.loads((Path(tmp) / "metrics.json").read_text(encoding="utf-8"))
    models = metrics["models"]
    rows = [[LABELS.get(n, n), f"{m['test']['ndcg@10']:.4f}", f"{m['test']['recall@10']:.4f}", m["epochs"],
             f"{m['train_seconds']:.1f}"]
            for n, m in sorted(models.items(), key=lambda kv: -kv[1]["test"]["ndcg@10"])]
    sizes = metrics["split_sizes"]
    whole = round(seconds)
    save(args.out, {"seconds": seconds, "split_sizes": sizes,
                    "test": {n: m["test"] for n, m in models.items()}}, "`python train.py` (the quickstart job)",
         f"`python train.py --quiet` with the defaults took **{whole // 60} min {whole % 60} s** wall, "
         f"features and all baselines included (synthetic demo shop; split sizes {sizes}). Test metrics, seed 0:\n\n"
         + markdown_table(["model", "NDCG@10", "Recall@10", "epochs", "train s"], rows))


if __name__ == "__main__":
    main()
