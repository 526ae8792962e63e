"""Parse ``graph_schema/schema.json`` into typed node and edge specs.

The schema is the single source of truth for node types, edge types (with their reverse names),
the canonical tables that feed them and the Neo4j labels / relationship types / constraints.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SchemaError(ValueError):
    """The schema file is malformed, or something names a type the schema does not declare."""


@dataclass(frozen=True)
class NodeSpec:
    name: str  # PyG node type, e.g. "product"
    label: str  # Neo4j label, e.g. "Product"
    table: str  # canonical Catalog table
    key: str  # unique id column
    properties: tuple[str, ...]
    # what the node's text embedding reads, in order: columns of its table, and relations from it
    # (their target is written as "<Label>: <target text>", e.g. "Brand: Acme")
    text: tuple[str, ...]


@dataclass(frozen=True)
class EdgeSpec:
    name: str  # PyG relation, e.g. "in_category"
    src: str
    dst: str
    reverse: str
    table: str
    src_col: str
    dst_col: str
    neo4j_type: str | None  # fixed relationship type, or None when chosen per interaction kind
    neo4j_type_by_kind: tuple[tuple[str, str], ...] = ()
    where_kind: str | None = None  # filter rows of a shared table by its ``kind`` column
    properties: tuple[str, ...] = ()
    target: bool = False  # the user→product edge that link prediction learns
    derived: str | None = None  # computed from the training split (not a catalog table, not in Neo4j)
    # a derived edge whose every pair is also a pair of this stored edge: Cypher matches it through that one
    neo4j_as: str | None = None

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.src, self.name, self.dst)

    @property
    def reverse_triple(self) -> tuple[str, str, str]:
        return (self.dst, self.reverse, self.src)

    def neo4j_types(self) -> tuple[str, ...]:
        if self.derived is not None:
            return ()
        if self.neo4j_type is not None:
            return (self.neo4j_type,)
        return tuple(t for _, t in self.neo4j_type_by_kind)


@dataclass(frozen=True)
class Schema:
    nodes: dict[str, NodeSpec]
    edges: dict[str, EdgeSpec]
    interaction_kinds: tuple[str, ...]
    digest: str  # sha256 of the schema file, stored in checkpoints

    @property
    def target(self) -> EdgeSpec:
        return next(e for e in self.edges.values() if e.target)

    def node_by_label(self, label: str) -> NodeSpec:
        for spec in self.nodes.values():
            if spec.label == label:
                return spec
        raise SchemaError(f"label {label!r} is not declared in graph_schema/schema.json")

    def stored_edges(self) -> list[EdgeSpec]:
        """Edges that live in catalog tables and Neo4j (everything but derived ones)."""
        return [e for e in self.edges.values() if e.derived is None]

    def relationship_types(self) -> set[str]:
        return {t for e in self.edges.values() for t in e.neo4j_types()}

    def edge_by_relation(self, relation: str) -> EdgeSpec:
        """The spec of a PyG relation name, forward or reverse."""
        for spec in self.edges.values():
            if relation in (spec.name, spec.reverse):
                return spec
        raise SchemaError(f"relation {relation!r} is not declared in graph_schema/schema.json")


def _check_ident(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise SchemaError(f"{what} {value!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def parse_schema(text: str) -> Schema:
    """Validate and parse the JSON text of a schema file."""
    raw = json.loads(text)
    unknown = set(raw) - {"version", "description", "nodes", "edges", "interaction_kinds"}
    if unknown:
        raise SchemaError(f"unknown top-level keys in schema: {sorted(unknown)}")
    nodes: dict[str, NodeSpec] = {}
    for name, spec in raw["nodes"].items():
        nodes[name] = NodeSpec(
            name=_check_ident(name, "node type"),
            label=_check_ident(spec["label"], "label"),
            table=spec["table"],
            key=spec["key"],
            properties=tuple(spec.get("properties", ())),
            text=tuple(spec.get("text", ())),
        )
    edges: dict[str, EdgeSpec] = {}
    for name, spec in raw["edges"].items():
        for end in ("src", "dst"):
            if spec[end] not in nodes:
                raise SchemaError(f"edge {name!r}: {end} {spec[end]!r} is not a node type")
        by_kind = tuple(sorted(spec.get("neo4j_type_by_kind", {}).items()))
        for _, rel_type in by_kind:
            _check_ident(rel_type, "relationship type")
        if spec.get("neo4j_type") is not None:
            _check_ident(spec["neo4j_type"], "relationship type")
        elif not by_kind and not spec.get("derived"):
            raise SchemaError(f"edge {name!r} needs neo4j_type or neo4j_type_by_kind")
        unknown_keys = set(spec) - {"src", "dst", "reverse", "table", "src_col", "dst_col", "neo4j_type",
                                    "neo4j_type_by_kind", "where_kind", "properties", "target", "description",
                                    "derived", "neo4j_as"}
        if unknown_keys:
            raise SchemaError(f"edge {name!r}: unknown keys {sorted(unknown_keys)}")
        edges[name] = EdgeSpec(
            name=_check_ident(name, "relation"),
            src=spec["src"],
            dst=spec["dst"],
            reverse=_check_ident(spec["reverse"], "reverse relation"),
            table=spec["table"],
            src_col=spec["src_col"],
            dst_col=spec["dst_col"],
            neo4j_type=spec.get("neo4j_type"),
            neo4j_type_by_kind=by_kind,
            where_kind=spec.get("where_kind"),
            properties=tuple(spec.get("properties", ())),
            target=bool(spec.get("target", False)),
            derived=spec.get("derived"),
            neo4j_as=spec.get("neo4j_as"),
        )
    for spec in edges.values():
        if spec.neo4j_as is None:
            continue
        stored = edges.get(spec.neo4j_as)
        if spec.derived is None or stored is None or stored.derived is not None or \
                (stored.src, stored.dst) != (spec.src, spec.dst):
            raise SchemaError(f"edge {spec.name!r}: neo4j_as must name a stored edge between the same node "
                              f"types, and only a derived edge may have it")
    if sum(e.target for e in edges.values()) != 1:
        raise SchemaError("exactly one edge must be marked as the link-prediction target")
    for spec in nodes.values():
        for item in spec.text:
            if item in edges and edges[item].src != spec.name:
                raise SchemaError(f"node {spec.name!r}: text relation {item!r} does not start at {spec.name!r}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Schema(nodes, edges, tuple(raw.get("interaction_kinds", ())), digest)


def schema_dir() -> Path:
    """Folder holding ``schema.json`` and the ``cypher/`` templates (installed as kgrec.graph_schema)."""
    return Path(str(resources.files("kgrec.graph_schema")))


@cache
def load_schema(path: str | None = None) -> Schema:
    """Load the installed schema, or the one at ``path``."""
    file = Path(path) if path else schema_dir() / "schema.json"
    return parse_schema(file.read_text(encoding="utf-8"))


def cypher(name: str) -> str:
    """The text of the Cypher template ``graph_schema/cypher/<name>.cypher``."""
    return (schema_dir() / "cypher" / f"{name}.cypher").read_text(encoding="utf-8")
