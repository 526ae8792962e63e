// Replace one model's recommendations for a batch of users in a single transaction, so no reader
// sees a user without recommendations. Labels and keys come from schema.json.
UNWIND $rows AS row
MATCH (u:{user_label} {{{user_key}: row.user_id}})
OPTIONAL MATCH (u)-[old:RECOMMENDED {{model: $model}}]->(:{product_label})
DELETE old
WITH DISTINCT u, row
UNWIND row.items AS item
MATCH (p:{product_label} {{{product_key}: item.product_id}})
CREATE (u)-[:RECOMMENDED {{score: item.score, rank: item.rank, model: $model, run_id: $run_id,
                          created_at: datetime()}}]->(p)
