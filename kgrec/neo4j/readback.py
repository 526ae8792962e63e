"""Build the same :class:`Catalog` back from Neo4j, page by page (no long-running transaction)."""
from __future__ import annotations

import pandas as pd

from kgrec.data.catalog import TABLE_COLUMNS, Catalog
from kgrec.data.schema import Schema, cypher, load_schema
from kgrec.neo4j.connection import Neo4jConfig
from kgrec.neo4j.connection import driver as open_driver

PAGE = 5000


def _pages(session, query: str, key: str):
    after = None
    while True:
        records = session.execute_read(lambda tx, after=after: list(tx.run(query, after=after, limit=PAGE)))
        if not records:
            return
        yield records
        after = records[-1][key]


def read_catalog(config: Neo4jConfig, schema: Schema | None = None) -> Catalog:
    """Read every schema node and relationship type into canonical tables and validate them."""
    schema = schema or load_schema()
    drv = open_driver(config)
    tables: dict[str, list[dict]] = {name: [] for name in TABLE_COLUMNS}
    brand_of: dict[str, str] = {}
    parent_of: dict[str, str] = {}
    try:
        with drv.session(database=config.database) as session:
            for spec in schema.nodes.values():
                query = cypher("read_nodes").format(label=spec.label, key=spec.key)
                for page in _pages(session, query, "id"):
                    for rec in page:
                        props = dict(rec["props"])
                        row = {spec.key: rec["id"], **{p: props.get(p) for p in spec.properties}}
                        tables[spec.table].append(row)
            for edge in schema.stored_edges():
                src, dst = schema.nodes[edge.src], schema.nodes[edge.dst]
                types = dict(edge.neo4j_type_by_kind) if edge.neo4j_type_by_kind else {None: edge.neo4j_type}
                for kind, rel_type in types.items():
                    query = cypher("read_relationships").format(src_label=src.label, src_key=src.key,
                                                                dst_label=dst.label, dst_key=dst.key, rel_type=rel_type)
                    # a page ends at a source node boundary, so a source's edges are never split
                    for page in _pages(session, query, "page_key"):
                        for rec in page:
                            for dst_id, props in rec["edges"]:
                                _add_edge(tables, edge, kind, rec["page_key"], dst_id, props, brand_of, parent_of)
    finally:
        drv.close()
    frames = {name: pd.DataFrame(rows, columns=list(TABLE_COLUMNS[name])) for name, rows in tables.items()}
    frames["products"]["brand_id"] = frames["products"]["product_id"].map(brand_of)
    frames["categories"]["parent_id"] = frames["categories"]["category_id"].map(parent_of)
    return Catalog.from_tables(frames, source=f"neo4j {config.uri} (database {config.database})")


def _add_edge(tables, edge, kind, src, dst, props, brand_of, parent_of) -> None:
    props = dict(props)
    if edge.name == "made_by":
        brand_of[src] = dst
    elif edge.name == "subcategory_of":
        parent_of[src] = dst
    elif edge.table == "interactions":
        tables["interactions"].append({"user_id": src, "product_id": dst, "kind": kind, **{
            p: props.get(p) for p in ("rating", "timestamp", "text", "sentiment")}})
    elif edge.table == "triples":
        tables["triples"].append({"head_id": src, "relation": props.get("relation"), "tail_id": dst, "kind": edge.src})
    elif edge.table == "product_links":
        tables["product_links"].append({"src_id": src, "dst_id": dst, "kind": edge.where_kind})
    else:
        tables[edge.table].append({edge.src_col: src, edge.dst_col: dst})
