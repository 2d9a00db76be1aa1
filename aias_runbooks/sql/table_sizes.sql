-- Table sizes with their indexes and TOAST, largest first, with the planner's row estimate. Limit-first: the candidates are chosen from the catalog's page counts (relpages, kept by VACUUM and ANALYZE) and every table never analyzed, and only those have their files measured.
WITH estimated AS (
    SELECT c.oid, n.nspname, c.relname, c.reltuples,
           c.relpages::bigint + coalesce(t.relpages, 0)
             + coalesce((SELECT sum(i.relpages) FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                         WHERE x.indrelid = c.oid), 0) AS pages
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind IN ('r', 'p', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
), candidates AS (
    (SELECT * FROM estimated ORDER BY pages DESC LIMIT 3 * :limit + 10)
    UNION
    SELECT * FROM estimated WHERE reltuples < 0      -- never analyzed: its page count says nothing yet
)
SELECT nspname || '.' || relname                          AS table_name,
       reltuples::bigint                                  AS estimated_rows,
       pg_total_relation_size(oid)                        AS total_bytes,
       pg_size_pretty(pg_total_relation_size(oid))        AS total_size,
       pg_size_pretty(pg_relation_size(oid))              AS table_size,
       pg_size_pretty(pg_indexes_size(oid))               AS index_size
FROM candidates
ORDER BY pg_total_relation_size(oid) DESC
LIMIT :limit
