-- Table sizes with their indexes and TOAST, largest first, with the planner's row estimate.
SELECT n.nspname || '.' || c.relname                        AS table_name,
       c.reltuples::bigint                                  AS estimated_rows,
       pg_total_relation_size(c.oid)                        AS total_bytes,
       pg_size_pretty(pg_total_relation_size(c.oid))        AS total_size,
       pg_size_pretty(pg_relation_size(c.oid))              AS table_size,
       pg_size_pretty(pg_indexes_size(c.oid))               AS index_size
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY pg_total_relation_size(c.oid) DESC
LIMIT :limit
