"""Neo4j import throughput: kgrec's batched UNWIND/MERGE import of a demo catalog next to a naive
one-row-per-transaction MERGE on a sample, in the same run, against a real local Neo4j.

    .venv/bin/python benchmarks/neo4j_import.py --scale 65 --naive-sample 2000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_report import markdown_table, save
from kgrec.data.schema import load_schema
from kgrec.loaders import load_catalog
from kgrec.neo4j import server
from kgrec.neo4j.connection import Neo4jConfig, driver
from kgrec.neo4j.importer import database_counts, expected_counts, import_catalog, relationship_groups


def naive_import(drv, catalog, sample: int) -> tuple[int, float]:
    """One MERGE per transaction, for the first ``sample`` interactions (nodes included)."""
    schema = load_schema()
    edge = schema.target
    rows = next(rows for _, rows in relationship_groups(catalog, edge))[:sample]
    t0 = time.perf_counter()
    with drv.session() as session:
        for r in rows:
            session.execute_write(
                lambda tx, r=r: tx.run(
                    "MERGE (u:User {user_id: $u}) MERGE (p:Product {product_id: $p}) "
                    "MERGE (u)-[x:NAIVE]->(p) SET x += $props",
                    u=r["src"],
                    p=r["dst"],
                    props=r["props"],
                ).consume()
            )
    return len(rows), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=65.0)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--naive-sample", type=int, default=2000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "neo4j_import.json"))
    args = ap.parse_args()
    cat = load_catalog("demo", scale=args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        proc, state = server.spawn(Path(tmp), exit_on_stdin_eof=True)
        try:
            drv = driver(Neo4jConfig(state.uri, state.user, state.password))
            summary = import_catalog(cat, drv, batch_size=args.batch_size)
            assert database_counts(drv) == expected_counts(cat)
            print(f"batched import: {summary.rows} rows in {summary.seconds:.1f}s", flush=True)
            with drv.session() as session:  # the naive run starts from an empty graph too (batched delete)
                session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
            n_naive, naive_s = naive_import(drv, cat, args.naive_sample)
            drv.close()
        finally:
            proc.stdin.close()
            proc.wait(timeout=120)
    fast = summary.rows / summary.seconds
    naive = n_naive / naive_s
    result = {
        "rows": summary.rows,
        "interactions": len(cat.interactions),
        "batched_seconds": summary.seconds,
        "batched_rows_per_s": fast,
        "naive_rows": n_naive,
        "naive_seconds": naive_s,
        "naive_rows_per_s": naive,
        "speedup": fast / naive,
        "batch_size": args.batch_size,
    }
    table = markdown_table(
        ["method", "rows", "seconds", "rows/s"],
        [
            [
                f"kgrec batched import (UNWIND, batch {args.batch_size:,})",
                f"{summary.rows:,}",
                f"{summary.seconds:.1f}",
                f"**{fast:,.0f}**",
            ],
            ["naive MERGE, one row per transaction", f"{n_naive:,}", f"{naive_s:.1f}", f"{naive:,.0f}"],
        ],
    )
    save(
        args.out,
        result,
        "Neo4j import",
        f"Demo catalog at scale {args.scale:g} ({len(cat.interactions):,} interactions) into a fresh local Neo4j "
        f"started by the kgrec launcher; the database counts are checked against the catalog after the "
        f"import.\n\n{table}\n\nSpeed-up {fast / naive:.0f}×.",
    )


if __name__ == "__main__":
    main()
