"""Publish a run's recommendations to Neo4j as
``(:User)-[:RECOMMENDED {rank, score, model, run_id, created_at, reason, because, via_label, via_key,
path_nodes, path_relationships}]->(:Product)``.

``because`` is the user's product that supports the recommendation most by the model's own numbers,
``via_label``/``via_key`` the category, brand or tag the two share (null when they share none), and
``path_nodes`` / ``path_relationships`` the same path as lists Cypher can return or match on:
``["User:U1", "Product:P7", "Brand:b003", "Product:P9"]`` and ``["INTERACTS", "MADE_BY", "MADE_BY"]``
(the user's edge is named by its schema relation, since its Neo4j type depends on the kind; two products
without a shared node are linked by ``CO_INTERACTED``, derived from the training split).

Each batch of users is replaced in one transaction: re-publishing a run replaces that run's
relationships and nothing else; ``replace_all`` also removes every other run's.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from kgrec.data.schema import Schema, cypher, load_schema


def run_id_of(run_dir: str | Path) -> str:
    """A stable id of a run: the digest of its checkpoint (the same run published twice has one id)."""
    h = hashlib.sha256()
    with open(Path(run_dir) / "checkpoint.pt", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"{Path(run_dir).name}-{h.hexdigest()[:12]}"


def write_recommendations(driver, recommendations: dict[str, list[dict]], model: str, run_id: str,
                          database: str = "neo4j", batch_size: int = 500, schema: Schema | None = None,
                          replace_all: bool = False, progress: bool = False) -> int:
    """``recommendations``: user id → ``[{"product_id", "score", "rank", and optionally "reason",
    "because", "via_label", "via_key", "path_nodes", "path_relationships"}, ...]``. Returns the
    relationships written."""
    schema = schema or load_schema()
    user, product = schema.nodes[schema.target.src], schema.nodes[schema.target.dst]
    query = cypher("write_recommendations").format(user_label=user.label, user_key=user.key,
                                                   product_label=product.label, product_key=product.key)
    keys = ("reason", "because", "via_label", "via_key", "path_nodes", "path_relationships")
    rows = [{"user_id": u, "items": [{"product_id": r["product_id"], "score": float(r["score"]), "rank": int(r["rank"]),
                                      **{k: r.get(k) for k in keys}} for r in recs]}
            for u, recs in recommendations.items()]
    written = 0

    def work(tx, batch):
        return tx.run(query, rows=batch, model=model, run_id=run_id,
                      replace_all=replace_all).consume().counters.relationships_created

    batches = range(0, len(rows), batch_size)
    if progress and len(rows) > batch_size:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="publishing", unit="batch", disable=None)
    with driver.session(database=database) as session:
        for start in batches:
            written += session.execute_write(work, rows[start:start + batch_size])
    return written


def publish_run(run_dir: str | Path, config, users: list[str] | None = None, k: int = 10, replace_all: bool = False,
                batch_size: int = 500, progress: bool = False) -> dict:
    """Every (or each of ``users``) user's top-``k`` of the run, with its reason as data, written to the
    Neo4j of ``config`` (:class:`kgrec.neo4j.connection.Neo4jConfig`). Returns counts and the run id."""
    from kgrec.neo4j.connection import driver
    from kgrec.serve.recommend import Recommender

    t0 = time.perf_counter()
    rec = Recommender.load(run_dir)
    schema = load_schema()
    users = list(rec.user_ids) if users is None else users
    index = rec.user_index(users)  # unknown ids fail here, before anything is written
    labels = {name: spec.label for name, spec in schema.nodes.items()}
    out: dict[str, list[dict]] = {}
    iterator = zip(users, index.tolist())
    if progress and len(users) > 500:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(users), desc="ranking", unit="user", disable=None)
    for user_id, u in iterator:
        rows = rec.recommend(user_id, k=k, reasons=False)
        supports = rec.supports(u, rec.product_index([r["product_id"] for r in rows]).tolist())
        for row, sup in zip(rows, supports):
            row["reason"] = sup["text"]
            if sup["product"] is not None:
                because = rec.product_ids[sup["product"]]
                row["because"] = because
                nodes = [f"{labels['user']}:{user_id}", f"{labels['product']}:{because}"]
                rels = [schema.target.name.upper()]
                if sup["node"] is not None:
                    node_type, i = sup["node"]
                    node_id = rec.ckpt["id_maps"][node_type][i]
                    row["via_label"], row["via_key"] = labels[node_type], node_id
                    edge_type = schema.edges[sup["relation"]].neo4j_type
                    nodes.append(f"{labels[node_type]}:{node_id}")
                    rels += [edge_type, edge_type]
                else:
                    rels.append("CO_INTERACTED")
                nodes.append(f"{labels['product']}:{row['product_id']}")
                row["path_nodes"], row["path_relationships"] = nodes, rels
        out[user_id] = rows
    run_id = run_id_of(run_dir)
    drv = driver(config)
    try:
        written = write_recommendations(drv, out, model=rec.served_name, run_id=run_id, database=config.database,
                                        batch_size=batch_size, schema=schema, replace_all=replace_all,
                                        progress=progress)
    finally:
        drv.close()
    return {"run_id": run_id, "model": rec.served_name, "users": len(out), "relationships": written,
            "expected": sum(len(v) for v in out.values()), "seconds": round(time.perf_counter() - t0, 2),
            "uri": config.uri}
