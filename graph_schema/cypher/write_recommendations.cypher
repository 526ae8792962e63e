// Replace a batch of users' recommendations of one run in a single transaction, so no reader sees a
// user of the batch without them. $replace_all also removes those of every other run. Labels and keys
// come from schema.json; every value is a parameter.
UNWIND $rows AS row
MATCH (u:{user_label} {{{user_key}: row.user_id}})
OPTIONAL MATCH (u)-[old:RECOMMENDED]->(:{product_label})
WHERE $replace_all OR old.run_id = $run_id
DELETE old
WITH DISTINCT u, row
UNWIND row.items AS item
MATCH (p:{product_label} {{{product_key}: item.product_id}})
CREATE (u)-[:RECOMMENDED {{score: item.score, rank: item.rank, model: $model, run_id: $run_id,
                          created_at: datetime(), reason: item.reason, because: item.because,
                          via_label: item.via_label, via_key: item.via_key,
                          path_nodes: item.path_nodes, path_relationships: item.path_relationships}}]->(p)
