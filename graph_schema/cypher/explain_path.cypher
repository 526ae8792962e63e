// One explanation path. {pattern} is built from schema.json labels, keys and relationship types only;
// every node id is a parameter ($n0, $n1, …).
MATCH p = {pattern}
RETURN p
LIMIT 1
