-- Table bloat, estimated as ioguix's pgsql-bloat-estimation table query (the one PgHero and pg-extras adapt) does: the pages the table's live rows need (reltuples, each row's width from pg_stats, its fillfactor) against the pages it holds; a fixed-width column's width comes from its type when pg_stats hides it (row level security hides a table's statistics from every role but its owner's and BYPASSRLS), and a table with a variable-width column whose statistics are hidden, or never analyzed, is listed with why and not estimated.
WITH columns AS (
    SELECT t.oid AS table_oid, a.attname,
           CASE WHEN a.attlen > 0 THEN a.attlen::numeric ELSE s.avg_width::numeric END AS width,
           coalesce(s.null_frac, 0)::numeric                                              AS null_frac,
           a.attlen <= 0 AND s.avg_width IS NULL                                          AS unknown,
           s.avg_width IS NOT NULL                                                        AS from_stats
    FROM pg_catalog.pg_class t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname
                                   AND s.attname = a.attname AND NOT s.inherited
    WHERE t.relkind IN ('r', 'm') AND n.nspname NOT IN ('information_schema', 'pg_toast')
      AND NOT pg_catalog.pg_is_other_temp_schema(t.relnamespace)
), tables AS (
    SELECT t.oid, n.nspname || '.' || t.relname AS table_name, t.reltuples::numeric AS reltuples, t.relrowsecurity,
           t.relpages + coalesce(toast.relpages, 0)                                     AS pages,
           coalesce(toast.reltuples, 0)::numeric                                        AS toast_tuples,
           pg_catalog.pg_table_size(t.oid)                                              AS table_bytes,
           coalesce(substring(pg_catalog.array_to_string(t.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 100)
                                                                                        AS fillfactor,
           pg_catalog.current_setting('block_size')::numeric                            AS bs,
           -- the tuple header (23 bytes), a null bitmap where a column has nulls, each column's average width
           23 + CASE WHEN max(c.null_frac) > 0 THEN (7 + count(*)) / 8 ELSE 0 END       AS header_bytes,
           sum((1 - c.null_frac) * coalesce(c.width, 0))                                AS data_bytes,
           bool_or(c.unknown)                                                           AS width_unknown,
           bool_or(c.from_stats)                                                        AS some_from_stats
    FROM pg_catalog.pg_class t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    JOIN columns c ON c.table_oid = t.oid
    LEFT JOIN pg_catalog.pg_class toast ON toast.oid = t.reltoastrelid
    GROUP BY t.oid, n.nspname, t.relname, toast.relpages, toast.reltuples
), sized AS (
    -- a row takes its header and data, each aligned to 8 bytes, plus a 4-byte line pointer in its page
    SELECT *, 4 + 8 * ceil(header_bytes / 8.0) + 8 * ceil(data_bytes / 8.0) AS row_bytes
    FROM tables
), judged AS (
    SELECT *,
           CASE WHEN reltuples >= 0 AND NOT width_unknown
                THEN ceil(reltuples / greatest(floor((bs - 24) * fillfactor / (100 * row_bytes)), 1)) + ceil(toast_tuples / 4)
           END AS expected_pages
    FROM sized
)
SELECT table_name, table_bytes, reltuples::bigint AS estimated_rows, fillfactor, row_bytes::int AS row_bytes,
       expected_pages IS NOT NULL AS estimated,
       CASE WHEN expected_pages IS NOT NULL THEN NULL
            WHEN reltuples < 0 THEN 'never analyzed'
            WHEN relrowsecurity AND pg_catalog.row_security_active(oid)
                THEN 'row level security hides its statistics from ' || current_user
            WHEN NOT pg_catalog.has_table_privilege(oid, 'SELECT')
                THEN 'pg_stats hides the statistics of columns ' || current_user || ' may not SELECT'
            ELSE 'a variable-width column has no statistics (not analyzed since it was added)' END AS why_not,
       CASE WHEN some_from_stats THEN 'pg_stats' ELSE 'column types' END AS widths_from,
       (expected_pages * bs)::bigint AS expected_bytes,
       (CASE WHEN pages > expected_pages THEN pages - expected_pages WHEN expected_pages IS NOT NULL THEN 0 END * bs)::bigint
           AS wasted_bytes,
       round(100.0 * CASE WHEN pages > expected_pages THEN pages - expected_pages WHEN expected_pages IS NOT NULL THEN 0 END
                   / nullif(pages, 0), 1)
           AS wasted_pct
FROM judged
ORDER BY wasted_bytes DESC NULLS LAST, table_bytes DESC, table_name
