"""Catalog benchmark: generate a demo catalog of ~N interactions, write it in the generic export
format, load it back through the generic loader (validation included). Prints time and peak memory.

    .venv/bin/python benchmarks/catalog_load.py --scale 65      # ≈ 1M interactions
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

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
        tracemalloc.start()
        t0 = time.perf_counter()
        again = load_catalog(tmp)
        load_s = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert again.equals(cat), "generic round trip changed the catalog"
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"interactions": n, "products": len(cat.products), "users": len(cat.users),
              "generate_s": gen_s, "write_generic_s": write_s, "load_generic_s": load_s,
              "load_rows_per_s": n / load_s, "load_peak_python_mb": peak / 2**20, "process_max_rss_mb": rss_mb}
    print(f"{'step':<28}{'seconds':>10}")
    for k in ("generate_s", "write_generic_s", "load_generic_s"):
        print(f"{k:<28}{result[k]:>10.1f}")
    print(f"{n:,} interactions; load {result['load_rows_per_s']:,.0f} rows/s; peak traced memory while loading "
          f"{result['load_peak_python_mb']:.0f} MB; process max RSS {rss_mb:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
