-- Dead tuples against the autovacuum trigger point (threshold + scale factor x reltuples), last vacuum and analyze, autovacuum_enabled=false.
SELECT s.schemaname || '.' || s.relname                                        AS table_name,
       c.reltuples::bigint                                                     AS live_rows,
       s.n_dead_tup                                                            AS dead_rows,
       round((100.0 * s.n_dead_tup / nullif(greatest(c.reltuples, 0) + s.n_dead_tup, 0))::numeric, 1) AS dead_pct,
       (current_setting('autovacuum_vacuum_threshold')::bigint
        + current_setting('autovacuum_vacuum_scale_factor')::numeric * greatest(c.reltuples, 0)::numeric)::bigint AS autovacuum_at,
       greatest(s.last_vacuum, s.last_autovacuum)                              AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze)                            AS last_analyze,
       EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
               WHERE lower(o) ~ '^autovacuum_enabled=(false|fals|fal|fa|f|off|of|no|n|0)$') AS autovacuum_disabled,
       EXISTS (SELECT 1 FROM unnest(t.reloptions) AS o      -- toast.autovacuum_enabled lives on the TOAST table
               WHERE lower(o) ~ '^autovacuum_enabled=(false|fals|fal|fa|f|off|of|no|n|0)$') AS toast_autovacuum_disabled
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
ORDER BY s.n_dead_tup DESC
