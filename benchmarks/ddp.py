"""Data-parallel training: the same small R-GCN run once in one process and once under
``torchrun --nproc_per_node 2`` (gloo, one thread per process), compared epoch by epoch.

    .venv/bin/python benchmarks/ddp.py
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import markdown_table, save

REPO = Path(__file__).resolve().parents[1]
# float32: bf16 rounds each process's slice of a product on its own (see tests/test_scale_refresh.py)
COMMON = ["--scale", "0.1", "--seed", "1", "--epochs", "6", "--baselines", "", "--hidden", "16",
          "--batch-size", "512", "--device", "cpu", "--no-paths", "--precision", "fp32", "--quiet"]


def _run(prefix: list[str], out: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    subprocess.run([*prefix, "train.py", *COMMON, "--out", out], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))["models"]["rgcn"], \
        time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ddp.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, one_s = _run([sys.executable], f"{tmp}/one")
        two, two_s = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                          f"{tmp}/two")
    rel = max(abs(b["loss"] - a["loss"]) / abs(a["loss"]) for a, b in zip(one["curve"], two["curve"]))
    rows = [["1 process", f"{one['val']['ndcg@10']:.4f}", f"{one['test']['ndcg@10']:.4f}", f"{one_s:.1f}"],
            ["2 processes (gloo)", f"{two['val']['ndcg@10']:.4f}", f"{two['test']['ndcg@10']:.4f}", f"{two_s:.1f}"]]
    save(args.out, {"one": one, "two": two, "one_seconds": one_s, "two_seconds": two_s,
                    "max_relative_loss_difference": rel}, "DDP: 2 gloo processes vs 1",
         f"`{shlex.join(['train.py', *COMMON])}`, once and under `torchrun --standalone --nproc_per_node 2`, "
         f"OMP_NUM_THREADS=1. The per-epoch training loss differs by at most **{rel:.1e}** (relative) over "
         f"{len(one['curve'])} epochs.\n\n" + markdown_table(["", "val NDCG@10", "test NDCG@10", "wall s"], rows)
         + "\n\nEvery process runs the full-graph forward, so on a small graph and 2 cores two processes are not "
           "faster; DDP is for more devices than one.")


if __name__ == "__main__":
    main()
