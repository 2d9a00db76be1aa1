-- Dead tuples against the autovacuum trigger point (threshold + scale factor x reltuples), last vacuum and analyze, autovacuum_enabled=false. The top :limit by dead rows, plus every table the vacuum check judges: dead rows over :lag_factor x its trigger point, or autovacuum disabled.
WITH tables AS (
    SELECT s.relid, s.schemaname, s.relname, s.n_dead_tup, c.reltuples,
           greatest(s.last_vacuum, s.last_autovacuum)                  AS last_vacuum,
           greatest(s.last_analyze, s.last_autoanalyze)                AS last_analyze,
           (current_setting('autovacuum_vacuum_threshold')::bigint
            + current_setting('autovacuum_vacuum_scale_factor')::numeric * greatest(c.reltuples, 0)::numeric)::bigint AS autovacuum_at,
           EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                   WHERE lower(o) ~ '^autovacuum_enabled=(false|fals|fal|fa|f|off|of|no|n|0)$') AS autovacuum_disabled,
           EXISTS (SELECT 1 FROM unnest(t.reloptions) AS o      -- toast.autovacuum_enabled lives on the TOAST table
                   WHERE lower(o) ~ '^autovacuum_enabled=(false|fals|fal|fa|f|off|of|no|n|0)$') AS toast_autovacuum_disabled
    FROM pg_catalog.pg_stat_user_tables s
    JOIN pg_catalog.pg_class c ON c.oid = s.relid
    LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
), ranked AS (
    SELECT tables.*,
           (n_dead_tup > :lag_factor * autovacuum_at OR autovacuum_disabled OR toast_autovacuum_disabled) AS flagged,
           row_number() OVER (ORDER BY n_dead_tup DESC, relid) AS rank
    FROM tables
)
SELECT schemaname || '.' || relname                                            AS table_name,
       reltuples::bigint                                                       AS live_rows,
       n_dead_tup                                                              AS dead_rows,
       round((100.0 * n_dead_tup / nullif(greatest(reltuples, 0) + n_dead_tup, 0))::numeric, 1) AS dead_pct,
       autovacuum_at,
       last_vacuum,
       last_analyze,
       autovacuum_disabled,
       toast_autovacuum_disabled
FROM ranked
WHERE rank <= :limit OR flagged
ORDER BY rank
