"""Catalog benchmark: generate a demo catalog of ~N interactions, write it in the generic export
format, load it back through the generic loader (validation included). Prints time and peak memory.

    .venv/bin/python benchmarks/catalog_load.py --scale 65      # ≈ 1M interactions
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import markdown_table, save
from kgrec.loaders import load_catalog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=65.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "catalog_load.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    cat = load_catalog("demo", scale=args.scale)
    gen_s = time.perf_counter() - t0
    n = len(cat.interactions)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cat.write_generic(tmp)
        write_s = time.perf_counter() - t0
        # load in a fresh process, so its time and peak memory are the loader's alone
        code = ("import sys, time; from kgrec.loaders import load_catalog; t = time.perf_counter(); "
                "c = load_catalog(sys.argv[1]); print(time.perf_counter() - t, len(c.interactions))")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, check=True)
        load_s, n_loaded = out.stdout.split()
        load_s = float(load_s)
        child_rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
        assert int(n_loaded) == n, "the loader lost interactions"
    result = {"interactions": n, "products": len(cat.products), "users": len(cat.users),
              "generate_s": gen_s, "write_generic_s": write_s, "load_generic_s": load_s,
              "load_rows_per_s": n / load_s, "load_process_peak_rss_mb": child_rss}
    table = markdown_table(["step", "result"], [
        ["generate the demo catalog", f"{gen_s:.1f} s"], ["write it in the generic export format", f"{write_s:.1f} s"],
        ["**load it back (fresh process)**", f"**{load_s:.1f} s, {n / load_s:,.0f} rows/s, "
                                             f"peak RSS {child_rss:,.0f} MB**"]])
    save(args.out, result, "Catalog load",
         f"Demo catalog at scale {args.scale:g}: {n:,} interactions, {len(cat.users):,} users, "
         f"{len(cat.products):,} products.\n\n{table}")


if __name__ == "__main__":
    main()
