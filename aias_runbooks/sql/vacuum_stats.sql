-- Dead tuples against the autovacuum trigger point (threshold + scale factor x reltuples), and the last vacuum and analyze.
SELECT s.schemaname || '.' || s.relname                                        AS table_name,
       c.reltuples::bigint                                                     AS live_rows,
       s.n_dead_tup                                                            AS dead_rows,
       round((100.0 * s.n_dead_tup / nullif(greatest(c.reltuples, 0) + s.n_dead_tup, 0))::numeric, 1) AS dead_pct,
       (current_setting('autovacuum_vacuum_threshold')::bigint
        + current_setting('autovacuum_vacuum_scale_factor')::numeric * greatest(c.reltuples, 0)::numeric)::bigint AS autovacuum_at,
       greatest(s.last_vacuum, s.last_autovacuum)                              AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze)                            AS last_analyze
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
ORDER BY s.n_dead_tup DESC
