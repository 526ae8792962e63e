"""Bulk path: CSV files for ``neo4j-admin database import full`` (header syntax with ID spaces).

For catalogs with hundreds of millions of rows, the offline importer is far faster than Cypher.
Writes one nodes file per label and one relationships file per type; :func:`kgrec.neo4j.server.bulk_import`
runs Neo4j's import tool on them (``kgrec import EXPORT --bulk``), or anyone runs the command line
with their own ``neo4j-admin``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from kgrec.data.catalog import Catalog
from kgrec.data.schema import Schema, load_schema
from kgrec.neo4j.importer import node_rows, relationship_groups

_TYPES = {"price": "float", "rating": "float", "timestamp": "long"}


@dataclass
class AdminFiles:
    """What :func:`write_admin_import` wrote: the import tool's arguments (file names relative to
    ``folder``) and the rows written, which a finished import must reproduce."""

    folder: Path
    database: str
    args: list[str] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)  # label → rows
    relationships: dict[str, int] = field(default_factory=dict)  # relationship type → rows

    @property
    def command(self) -> str:
        return (f"cd {self.folder} && neo4j-admin database import full {self.database} --overwrite-destination "
                + " ".join(self.args))


def write_admin_import(catalog: Catalog, out_dir: str | Path, database: str = "neo4j",
                       schema: Schema | None = None) -> AdminFiles:
    schema = schema or load_schema()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = AdminFiles(out, database)
    args = files.args
    for name, spec in schema.nodes.items():
        rows = node_rows(catalog, name, schema)
        path = out / f"nodes_{spec.label}.csv"
        header = (
            [f"{spec.key}:ID({spec.label})"] + [f"{p}:{_TYPES.get(p, 'string')}" for p in spec.properties] + [":LABEL"]
        )
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            files.nodes[spec.label] = files.nodes.get(spec.label, 0) + len(rows)
            for r in rows:
                w.writerow(
                    [r["id"]]
                    + ["" if r["props"].get(p) is None else r["props"][p] for p in spec.properties]
                    + [spec.label]
                )
        args.append(f"--nodes={path.name}")
    for edge in schema.stored_edges():
        src, dst = schema.nodes[edge.src], schema.nodes[edge.dst]
        props = [p for p in edge.properties if not (edge.neo4j_type_by_kind and p == "kind")]
        for rel_type, rows in relationship_groups(catalog, edge):
            if not rows:
                continue
            path = out / f"rels_{edge.name}_{rel_type}.csv"
            header = (
                [f":START_ID({src.label})", f":END_ID({dst.label})"]
                + [f"{p}:{_TYPES.get(p, 'string')}" for p in props]
                + [":TYPE"]
            )
            with path.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                files.relationships[rel_type] = files.relationships.get(rel_type, 0) + len(rows)
                for r in rows:
                    w.writerow(
                        [r["src"], r["dst"]]
                        + ["" if r["props"].get(p) is None else r["props"][p] for p in props]
                        + [rel_type]
                    )
            args.append(f"--relationships={path.name}")
    (out / "IMPORT_COMMAND.txt").write_text(files.command + "\n", encoding="utf-8")
    return files
