-- B-tree index bloat, estimated as ioguix's pgsql-bloat-estimation btree query (the one PgHero and pg-extras adapt) does: the leaf pages the index's entries need (its reltuples, each key's width, fillfactor 90 unless set) against the pages it holds; a fixed-width key's width comes from its type when pg_stats hides the table's statistics (row level security), and an index with a variable-width key whose statistics are hidden is listed with why and not estimated. Deduplicated entries (PostgreSQL 13+) make a low-cardinality index look smaller, never bloated.
WITH keys AS (
    SELECT x.indexrelid AS index_oid, k.attpos,
           CASE WHEN ia.attlen > 0 THEN ia.attlen::numeric ELSE s.avg_width::numeric END AS width,
           coalesce(s.null_frac, 0)::numeric                                             AS null_frac,
           ia.attlen <= 0 AND s.avg_width IS NULL                                        AS unknown
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = i.relam AND am.amname = 'btree'
    JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    CROSS JOIN LATERAL pg_catalog.generate_series(1, x.indnatts) AS k(attpos)
    JOIN pg_catalog.pg_attribute ia ON ia.attrelid = x.indexrelid AND ia.attnum = k.attpos
    -- a plain column's statistics are the table's; an expression's are the index's own
    LEFT JOIN pg_catalog.pg_attribute ta ON ta.attrelid = x.indrelid AND ta.attnum = x.indkey[k.attpos - 1]
                                        AND x.indkey[k.attpos - 1] <> 0
    LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND NOT s.inherited
                                   AND ((ta.attnum IS NOT NULL AND s.tablename = t.relname AND s.attname = ta.attname)
                                        OR (ta.attnum IS NULL AND s.tablename = i.relname AND s.attname = ia.attname))
    WHERE n.nspname NOT IN ('information_schema', 'pg_toast') AND x.indisvalid
      AND NOT pg_catalog.pg_is_other_temp_schema(t.relnamespace)
), indexes AS (
    SELECT i.oid, t.oid AS table_oid, n.nspname || '.' || i.relname AS index_name,
           n.nspname || '.' || t.relname AS table_name, t.relrowsecurity,
           i.reltuples::numeric AS reltuples, i.relpages::numeric AS pages,
           pg_catalog.pg_relation_size(i.oid)                                             AS index_bytes,
           coalesce(substring(pg_catalog.array_to_string(i.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 90)
                                                                                          AS fillfactor,
           pg_catalog.current_setting('block_size')::numeric                              AS bs,
           -- the index tuple header (8 bytes), a null bitmap where a key has nulls, each key's average width
           CASE WHEN max(k.null_frac) > 0 THEN 12 ELSE 8 END                              AS header_bytes,
           sum((1 - k.null_frac) * coalesce(k.width, 0))                                  AS data_bytes,
           bool_or(k.unknown)                                                             AS width_unknown
    FROM keys k
    JOIN pg_catalog.pg_class i ON i.oid = k.index_oid
    JOIN pg_catalog.pg_index x ON x.indexrelid = i.oid
    JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    GROUP BY i.oid, t.oid, n.nspname, i.relname, t.relname
), judged AS (
    -- an entry takes its header and data, each aligned to 8 bytes, plus a 4-byte line pointer; a page keeps 24
    -- bytes of header and 16 of B-tree special space; one page is the metapage
    SELECT *, 4 + 8 * ceil(header_bytes / 8.0) + 8 * ceil(data_bytes / 8.0) AS entry_bytes,
           CASE WHEN reltuples >= 0 AND NOT width_unknown
                THEN 1 + ceil(reltuples / greatest(floor((bs - 24 - 16) * fillfactor
                                                         / (100 * (4 + 8 * ceil(header_bytes / 8.0)
                                                                   + 8 * ceil(data_bytes / 8.0)))), 1))
           END AS expected_pages
    FROM indexes
)
SELECT index_name, table_name, index_bytes, reltuples::bigint AS estimated_entries, fillfactor,
       entry_bytes::int AS entry_bytes, expected_pages IS NOT NULL AS estimated,
       CASE WHEN expected_pages IS NOT NULL THEN NULL
            WHEN reltuples < 0 THEN 'never analyzed'
            WHEN relrowsecurity AND pg_catalog.row_security_active(table_oid)
                THEN 'row level security hides its table''s statistics from ' || current_user
            WHEN NOT pg_catalog.has_table_privilege(table_oid, 'SELECT')
                THEN 'pg_stats hides the statistics of columns ' || current_user || ' may not SELECT'
            ELSE 'a variable-width key has no statistics (its table not analyzed since)' END AS why_not,
       (expected_pages * bs)::bigint AS expected_bytes,
       (CASE WHEN pages > expected_pages THEN pages - expected_pages WHEN expected_pages IS NOT NULL THEN 0 END * bs)::bigint
           AS wasted_bytes,
       round(100.0 * CASE WHEN pages > expected_pages THEN pages - expected_pages WHEN expected_pages IS NOT NULL THEN 0 END
                   / nullif(pages, 0), 1)
           AS wasted_pct
FROM judged
ORDER BY wasted_bytes DESC NULLS LAST, index_bytes DESC, index_name
