-- Cumulative buffer hits and reads per table (heap) and per index of the user schemas (supabase_migrations, auth included), relations ever read only: one snapshot of the cache-hit window.
SELECT 'table'                                  AS kind,
       s.relid::bigint                          AS relid,
       s.schemaname || '.' || s.relname         AS relation,
       s.schemaname || '.' || s.relname         AS table_name,
       coalesce(s.heap_blks_hit, 0)::bigint     AS hits,
       coalesce(s.heap_blks_read, 0)::bigint    AS reads
FROM pg_catalog.pg_statio_user_tables s
WHERE coalesce(s.heap_blks_hit, 0) + coalesce(s.heap_blks_read, 0) > 0
UNION ALL
SELECT 'index',
       i.indexrelid::bigint,
       i.schemaname || '.' || i.indexrelname,
       i.schemaname || '.' || i.relname,
       coalesce(i.idx_blks_hit, 0)::bigint,
       coalesce(i.idx_blks_read, 0)::bigint
FROM pg_catalog.pg_statio_user_indexes i
WHERE coalesce(i.idx_blks_hit, 0) + coalesce(i.idx_blks_read, 0) > 0
