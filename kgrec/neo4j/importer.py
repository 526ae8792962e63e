"""Import a catalog into Neo4j: constraints first, then batched ``UNWIND $rows … MERGE`` writes in
managed transactions (transient errors are retried by the driver). Re-importing the same catalog
changes nothing; a newer export updates properties and adds what is new.

Every label, key and relationship type in the Cypher comes from ``graph_schema/schema.json``; every
value is a query parameter.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from kgrec.data.catalog import Catalog
from kgrec.data.schema import EdgeSpec, Schema, cypher, load_schema


def _clean(value):
    """Python/pandas value → something the driver stores (None for missing)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def node_rows(catalog: Catalog, node: str, schema: Schema) -> list[dict]:
    spec = schema.nodes[node]
    df = catalog.tables[spec.table]
    props = [p for p in spec.properties if p in df.columns]
    cols = [df[spec.key].tolist()] + [df[p].tolist() for p in props]
    return [{"id": row[0], "props": {p: _clean(v) for p, v in zip(props, row[1:])}} for row in zip(*cols)]


def relationship_groups(catalog: Catalog, edge: EdgeSpec) -> Iterator[tuple[str, list[dict]]]:
    """``(relationship type, rows)`` for one schema edge; interactions are split by kind."""
    df = catalog.edge_table(edge.name)
    props = [p for p in edge.properties if p in df.columns and not (edge.neo4j_type_by_kind and p == "kind")]
    if edge.neo4j_type_by_kind:
        by_kind = dict(edge.neo4j_type_by_kind)
        for kind, part in df.groupby("kind", sort=True):
            yield by_kind[kind], _rel_rows(part, edge, props)
    else:
        yield edge.neo4j_type, _rel_rows(df, edge, props)


def _unique_rows(rows: list[dict], by_relation: bool) -> list[dict]:
    """One row per MERGE key (src, dst[, relation]), the last one winning as consecutive MERGEs' SETs would."""
    keyed = {(r["src"], r["dst"], r["props"].get("relation") if by_relation else None): r for r in rows}
    return list(keyed.values()) if len(keyed) < len(rows) else rows


def _rel_rows(df: pd.DataFrame, edge: EdgeSpec, props: list[str]) -> list[dict]:
    cols = [df[edge.src_col].tolist(), df[edge.dst_col].tolist()] + [df[p].tolist() for p in props]
    return [{"src": r[0], "dst": r[1], "props": {p: _clean(v) for p, v in zip(props, r[2:])}} for r in zip(*cols)]


def expected_counts(catalog: Catalog, schema: Schema | None = None) -> dict[str, dict[str, int]]:
    """What a complete import holds: nodes per label and relationships per type."""
    schema = schema or load_schema()
    labels = {spec.label: len(catalog.tables[spec.table]) for spec in schema.nodes.values()}
    rels: dict[str, int] = {t: 0 for t in sorted(schema.relationship_types())}
    for edge in schema.stored_edges():
        for rel_type, rows in relationship_groups(catalog, edge):
            rels[rel_type] = rels.get(rel_type, 0) + len(rows)
    return {"labels": labels, "relationships": rels}


def database_counts(driver, database: str = "neo4j", schema: Schema | None = None) -> dict[str, dict[str, int]]:
    schema = schema or load_schema()
    labels, rels = {}, {}
    for spec in schema.nodes.values():
        rec, _, _ = driver.execute_query(f"MATCH (n:{spec.label}) RETURN count(n) AS c", database_=database)
        labels[spec.label] = rec[0]["c"]
    for rel_type in sorted(schema.relationship_types()):
        rec, _, _ = driver.execute_query(f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS c", database_=database)
        rels[rel_type] = rec[0]["c"]
    return {"labels": labels, "relationships": rels}


def create_constraints(driver, database: str = "neo4j", schema: Schema | None = None) -> list[str]:
    schema = schema or load_schema()
    names = []
    for spec in schema.nodes.values():
        name = f"kgrec_{spec.label.lower()}_{spec.key}"
        driver.execute_query(cypher("constraint").format(name=name, label=spec.label, key=spec.key), database_=database)
        names.append(name)
    return names


@dataclass
class ImportSummary:
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> created/properties_set/rows
    relationships: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # the load report's skips, by reason
    rows: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"nodes": self.nodes, "relationships": self.relationships, "rows_skipped": self.skipped,
                "rows": self.rows, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None}


def _write_batches(
    session, query: str, rows: list[dict], batch_size: int, bar, extra: dict | None = None
) -> dict[str, int]:
    totals = {"created": 0, "properties_set": 0, "rows": len(rows)}

    def work(tx, batch):
        summary = tx.run(query, rows=batch, **(extra or {})).consume()
        c = summary.counters
        return c.nodes_created + c.relationships_created, c.properties_set

    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        created, props = session.execute_write(work, batch)
        totals["created"] += created
        totals["properties_set"] += props
        if bar is not None:
            bar.update(len(batch))
    return totals


def import_to(
    catalog: Catalog,
    uri: str | None = None,
    user: str | None = None,
    database: str | None = None,
    batch_size: int = 5000,
    progress: bool = False,
) -> dict:
    """``kgrec import``: connect (flags, else the environment, else the local server), import, summarise."""
    from kgrec.neo4j.connection import driver, resolve_config

    config = resolve_config(uri, user, None, database)
    drv = driver(config)
    try:
        summary = import_catalog(catalog, drv, config.database, batch_size=batch_size, progress=progress)
    finally:
        drv.close()
    return {"source": catalog.source, "uri": config.uri, "database": config.database, **summary.to_dict()}


def import_catalog(
    catalog: Catalog,
    driver,
    database: str = "neo4j",
    batch_size: int = 5000,
    progress: bool = False,
    schema: Schema | None = None,
) -> ImportSummary:
    """Write the whole catalog. Safe to re-run after a failure: labels and relationship types the
    database already holds are written with idempotent MERGEs; those it does not hold yet (a first
    import, or a type the export adds) with CREATE, which skips the search for an existing node or
    relationship: the rows are unique per MERGE key, so both write the same graph, and a re-run after
    an interruption finds the type present and MERGEs."""
    schema = schema or load_schema()
    t0 = time.perf_counter()
    create_constraints(driver, database, schema)
    present = database_counts(driver, database, schema)  # O(1) each: Neo4j's count store
    summary = ImportSummary(skipped=dict(catalog.report.skipped))
    node_batches = {n: node_rows(catalog, n, schema) for n in schema.nodes}
    rel_batches = [
        (edge, rel_type, rows)
        for edge in schema.stored_edges()
        for rel_type, rows in relationship_groups(catalog, edge)
    ]
    total = sum(map(len, node_batches.values())) + sum(len(r) for _, _, r in rel_batches)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="importing into Neo4j", unit="row", disable=None)
    with driver.session(database=database) as session:
        for node, rows in node_batches.items():
            spec = schema.nodes[node]
            verb = "create" if present["labels"].get(spec.label, 0) == 0 else "merge"
            query = cypher(f"{verb}_nodes").format(label=spec.label, key=spec.key)
            summary.nodes[spec.label] = _write_batches(session, query, rows, batch_size, bar)
        for edge, rel_type, rows in rel_batches:
            src, dst = schema.nodes[edge.src], schema.nodes[edge.dst]
            merge_props = " {relation: row.props.relation}" if "relation" in edge.properties else ""
            verb = "create" if present["relationships"].get(rel_type, 0) == 0 else "merge"
            if verb == "create":
                rows = _unique_rows(rows, "relation" in edge.properties)
            query = cypher(f"{verb}_relationships").format(
                src_label=src.label,
                src_key=src.key,
                dst_label=dst.label,
                dst_key=dst.key,
                rel_type=rel_type,
                merge_props=merge_props,
            )
            got = _write_batches(session, query, rows, batch_size, bar)
            prev = summary.relationships.get(rel_type)
            summary.relationships[rel_type] = got if prev is None else {k: prev[k] + got[k] for k in got}
    if bar is not None:
        bar.close()
    summary.rows = total
    summary.seconds = time.perf_counter() - t0
    return summary
