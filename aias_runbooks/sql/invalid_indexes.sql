-- Invalid indexes (indisvalid false), left by a CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY) that failed: no query uses them, yet a ready one still costs every write; building is true while such a build is still running.
SELECT n.nspname || '.' || i.relname                               AS index_name,
       tn.nspname || '.' || t.relname                              AS table_name,
       x.indisunique                                               AS is_unique,
       x.indisready                                                AS maintained_on_write,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p
               WHERE p.index_relid = x.indexrelid)                 AS building,
       pg_catalog.pg_relation_size(x.indexrelid)                   AS index_bytes,
       pg_catalog.pg_get_indexdef(x.indexrelid)                    AS definition
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
WHERE NOT x.indisvalid AND NOT pg_catalog.pg_is_other_temp_schema(i.relnamespace)
ORDER BY index_name
