// Relationship insert for a type the database does not hold yet (the rows are unique per MERGE key, so
// this writes what merge_relationships would, without looking for existing relationships).
UNWIND $rows AS row
MATCH (a:{src_label} {{{src_key}: row.src}})
MATCH (b:{dst_label} {{{dst_key}: row.dst}})
CREATE (a)-[r:{rel_type}]->(b)
SET r += row.props
