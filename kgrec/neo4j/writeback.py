"""Write recommendations back as ``(:User)-[:RECOMMENDED {score, rank, model, run_id, created_at}]->(:Product)``.

Each batch of users is replaced in one transaction (old edges of that model deleted, new ones
created), so no reader ever sees a user of that batch without recommendations.
"""
from __future__ import annotations

from kgrec.data.schema import Schema, cypher, load_schema


def write_recommendations(driver, recommendations: dict[str, list[dict]], model: str, run_id: str,
                          database: str = "neo4j", batch_size: int = 500, schema: Schema | None = None) -> int:
    """``recommendations``: user id → ``[{"product_id", "score", "rank"}, ...]``. Returns edges written."""
    schema = schema or load_schema()
    user, product = schema.nodes[schema.target.src], schema.nodes[schema.target.dst]
    query = cypher("write_recommendations").format(user_label=user.label, user_key=user.key,
                                                   product_label=product.label, product_key=product.key)
    rows = [{"user_id": u, "items": [{"product_id": r["product_id"], "score": float(r["score"]), "rank": int(r["rank"])}
                                     for r in recs]} for u, recs in recommendations.items()]
    written = 0

    def work(tx, batch):
        return tx.run(query, rows=batch, model=model, run_id=run_id).consume().counters.relationships_created

    with driver.session(database=database) as session:
        for start in range(0, len(rows), batch_size):
            written += session.execute_write(work, rows[start:start + batch_size])
    return written
