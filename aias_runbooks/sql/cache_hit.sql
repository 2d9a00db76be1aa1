-- Share of table and index block reads served from shared buffers since stats were reset (target 99%).
SELECT 'table' AS kind,
       sum(heap_blks_hit)::bigint                                              AS hits,
       sum(heap_blks_read)::bigint                                             AS reads,
       round(100.0 * sum(heap_blks_hit) / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0), 2) AS hit_pct
FROM pg_catalog.pg_statio_user_tables
UNION ALL
SELECT 'index',
       sum(idx_blks_hit)::bigint,
       sum(idx_blks_read)::bigint,
       round(100.0 * sum(idx_blks_hit) / nullif(sum(idx_blks_hit) + sum(idx_blks_read), 0), 2)
FROM pg_catalog.pg_statio_user_indexes
