// Idempotent relationship upsert between existing nodes. Labels, keys and {rel_type} come from schema.json.
UNWIND $rows AS row
MATCH (a:{src_label} {{{src_key}: row.src}})
MATCH (b:{dst_label} {{{dst_key}: row.dst}})
MERGE (a)-[r:{rel_type}{merge_props}]->(b)
SET r += row.props
