// Keyset-paginated node read (one short transaction per page).
MATCH (n:{label})
WHERE $after IS NULL OR n.{key} > $after
RETURN n.{key} AS id, properties(n) AS props
ORDER BY n.{key}
LIMIT $limit
