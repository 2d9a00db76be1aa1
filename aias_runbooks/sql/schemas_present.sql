-- Which of the given schemas (:schemas) this database has: a restore keeps those as they are.
SELECT n.nspname AS schema_name
FROM pg_catalog.pg_namespace n
WHERE n.nspname = ANY(CAST(:schemas AS text[]))
ORDER BY n.nspname
