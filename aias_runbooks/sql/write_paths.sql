-- Every way the connected role could write: tables it (or any role it may SET ROLE to) may change, schemas it may create in, VOLATILE SECURITY DEFINER functions it may run.
WITH reachable AS (
  SELECT r.oid, r.rolname FROM pg_catalog.pg_roles r
  WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
), relations AS (
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
)
SELECT 'table' AS kind, format('%s as %s', c.name, r.rolname) AS path
FROM reachable r CROSS JOIN relations c
WHERE pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
   OR pg_catalog.has_any_column_privilege(r.oid, c.oid, 'INSERT, UPDATE')
UNION ALL
SELECT 'schema', format('CREATE in %s as %s', n.nspname, r.rolname)
FROM reachable r CROSS JOIN pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')
UNION ALL
SELECT 'function', format('%s (VOLATILE SECURITY DEFINER, owner %s)', p.oid::regprocedure,
                          pg_catalog.pg_get_userbyid(p.proowner))
FROM pg_catalog.pg_proc p
WHERE p.prosecdef AND p.provolatile = 'v' AND pg_catalog.has_function_privilege(current_user, p.oid, 'EXECUTE')
ORDER BY 1, 2
