// Node insert for a label the database does not hold yet (the rows' keys are unique; the uniqueness
// constraint would refuse a duplicate). {label} and {key} come from schema.json.
UNWIND $rows AS row
CREATE (n:{label} {{{key}: row.id}})
SET n += row.props
