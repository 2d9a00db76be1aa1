-- What exists in the target now (schemas, relations, functions, types), for the pending migrations' dependency check.
SELECT kind, schema, name FROM (
  SELECT 'schema' AS kind, n.nspname AS schema, n.nspname AS name
  FROM pg_catalog.pg_namespace n
  WHERE n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
  UNION ALL
  -- tables, views, materialized views, sequences, foreign tables, indexes and composite types
  SELECT 'relation', n.nspname, c.relname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c') AND n.nspname <> 'pg_toast'
    AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
  UNION ALL
  -- functions, one row per name (pg_catalog's too: realtime.to_regrole must not hide the built-in to_regrole)
  SELECT DISTINCT 'function', n.nspname, p.proname
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname <> 'information_schema'
  UNION ALL
  -- types that are not a table's row type or an array (those follow their table or element)
  SELECT 'type', n.nspname, t.typname
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
  WHERE n.nspname NOT IN ('information_schema', 'pg_toast') AND t.typrelid = 0
    AND t.typcategory <> 'A'
) AS objects
LIMIT :limit
