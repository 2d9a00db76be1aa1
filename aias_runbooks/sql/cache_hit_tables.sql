-- The tables whose blocks are read from disk most (heap_blks_read vs heap_blks_hit per table since the stats reset).
SELECT s.schemaname || '.' || s.relname                                               AS table_name,
       coalesce(s.heap_blks_read, 0)                                                  AS reads,
       coalesce(s.heap_blks_hit, 0)                                                   AS hits,
       round(100.0 * s.heap_blks_hit / nullif(s.heap_blks_hit + s.heap_blks_read, 0), 2) AS hit_pct,
       pg_size_pretty(pg_relation_size(s.relid))                                      AS table_size
FROM pg_catalog.pg_statio_user_tables s
WHERE coalesce(s.heap_blks_read, 0) > 0
ORDER BY s.heap_blks_read DESC, s.relname
LIMIT :limit
