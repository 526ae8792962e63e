// Relationships of one type, paginated by source node key: every source node of the page is
// returned once (with an empty list when it has none), so an empty page means the end.
MATCH (a:{src_label})
WHERE $after IS NULL OR a.{src_key} > $after
WITH a ORDER BY a.{src_key} LIMIT $limit
OPTIONAL MATCH (a)-[r:{rel_type}]->(b:{dst_label})
RETURN a.{src_key} AS page_key, [x IN collect([b.{dst_key}, properties(r)]) WHERE x[0] IS NOT NULL] AS edges
