"""Connect to Neo4j with credentials from flags, the environment or the local server's state file.

Order: explicit arguments, then ``NEO4J_URI`` / ``NEO4J_USER`` / ``NEO4J_PASSWORD``, then the server
started by ``kgrec neo4j start``. Credentials are never logged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from kgrec.neo4j import server


@dataclass(frozen=True)
class Neo4jConfig:
    uri: str
    user: str
    password: str = ""
    database: str = "neo4j"

    def __repr__(self) -> str:  # never show the password
        return f"Neo4jConfig(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"


def resolve_config(uri: str | None = None, user: str | None = None, password: str | None = None,
                   database: str | None = None) -> Neo4jConfig:
    uri = uri or os.environ.get("NEO4J_URI")
    if uri:
        return Neo4jConfig(uri, user or os.environ.get("NEO4J_USER", "neo4j"),
                           password if password is not None else os.environ.get("NEO4J_PASSWORD", ""),
                           database or os.environ.get("NEO4J_DATABASE", "neo4j"))
    state = server.status()
    if state is None:
        raise server.Neo4jServerError("no Neo4j configured: pass --uri, set NEO4J_URI (with NEO4J_USER and "
                                      "NEO4J_PASSWORD), or start a local one with 'kgrec neo4j start'")
    return Neo4jConfig(state.uri, state.user, state.password, database or "neo4j")


def driver(config: Neo4jConfig):
    """An open ``neo4j.Driver`` whose connectivity has been verified."""
    import neo4j

    # "relationship type does not exist" notices are expected for schema types a shop does not use
    drv = neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password),
                                     notifications_min_severity="OFF")
    try:
        drv.verify_connectivity()
    except Exception as exc:
        drv.close()
        raise server.Neo4jServerError(
            f"cannot connect to Neo4j at {config.uri}: {exc.__class__.__name__}: {exc}"
        ) from None
    return drv
