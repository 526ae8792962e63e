"""Neo4j import throughput against a real local Neo4j, all on the same demo catalog:

- kgrec's import over Bolt (batched UNWIND; CREATE for what the database does not hold yet, MERGE
  for the rest) into an empty database;
- the same import again over the full database (every row a MERGE that finds its node or
  relationship: what an update of an unchanged export costs);
- the bulk path (``kgrec import --bulk``): the neo4j-admin CSV files written, then Neo4j's import
  tool loading a fresh database, whose counts are then checked over Bolt;
- a naive one-row-per-transaction MERGE on a sample.

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
from kgrec.neo4j.admin_csv import write_admin_import
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
            again = import_catalog(cat, drv, batch_size=args.batch_size)
            assert database_counts(drv) == expected_counts(cat)
            print(f"re-import (all MERGE): {again.rows} rows in {again.seconds:.1f}s", flush=True)
            with drv.session() as session:  # the naive run starts from an empty graph too (batched delete)
                session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
            n_naive, naive_s = naive_import(drv, cat, args.naive_sample)
            drv.close()
        finally:
            proc.stdin.close()
            proc.wait(timeout=120)
        t0 = time.perf_counter()
        files = write_admin_import(cat, Path(tmp) / "csv")
        csv_s = time.perf_counter() - t0
        bulk_dir = Path(tmp) / "bulk"
        bulk = server.bulk_import(files, bulk_dir)
        proc, state = server.spawn(bulk_dir, exit_on_stdin_eof=True)
        try:
            drv = driver(Neo4jConfig(state.uri, state.user, state.password))
            assert database_counts(drv) == expected_counts(cat)
            drv.close()
        finally:
            proc.stdin.close()
            proc.wait(timeout=120)
        print(f"bulk: CSV {csv_s:.1f}s, import tool {bulk['seconds']}s", flush=True)
    fast = summary.rows / summary.seconds
    bulk_rows = bulk["nodes"] + bulk["relationships"]
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
        "remerge_seconds": again.seconds,
        "remerge_rows_per_s": again.rows / again.seconds,
        "bulk_rows": bulk_rows,
        "bulk_csv_seconds": csv_s,
        "bulk_tool_seconds": bulk["seconds"],
        "bulk_rows_per_s": bulk_rows / bulk["seconds"],
        "bulk_with_csv_rows_per_s": bulk_rows / (bulk["seconds"] + csv_s),
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
            ["the same import again (every row MERGEs onto what exists)", f"{again.rows:,}",
             f"{again.seconds:.1f}", f"{again.rows / again.seconds:,.0f}"],
            ["bulk: Neo4j's import tool on the CSV files (`kgrec import --bulk`), fresh database", f"{bulk_rows:,}",
             f"{bulk['seconds']:.1f}", f"**{bulk_rows / bulk['seconds']:,.0f}**"],
            ["bulk including writing the CSV files", f"{bulk_rows:,}", f"{bulk['seconds'] + csv_s:.1f}",
             f"{bulk_rows / (bulk['seconds'] + csv_s):,.0f}"],
            ["naive MERGE, one row per transaction", f"{n_naive:,}", f"{naive_s:.1f}", f"{naive:,.0f}"],
        ],
    )
    save(
        args.out,
        result,
        "Neo4j import",
        f"Demo catalog at scale {args.scale:g} ({len(cat.interactions):,} interactions) into a fresh local Neo4j "
        f"started by the kgrec launcher (1 GB heap, 128 MB page cache); the database counts are checked "
        f"against the catalog after every import.\n\n{table}\n\nBatched over naive: {fast / naive:.0f}×.",
    )


if __name__ == "__main__":
    main()
