// Idempotent node upsert. {label} and {key} come from schema.json; all values are parameters.
UNWIND $rows AS row
MERGE (n:{label} {{{key}: row.id}})
SET n += row.props
