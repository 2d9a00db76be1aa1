-- Tables in exposed schemas without row level security, or with RLS enabled but no policy (nothing readable).
SELECT n.nspname                 AS schema,
       c.relname                 AS table_name,
       CASE WHEN NOT c.relrowsecurity THEN 'RLS_DISABLED' ELSE 'RLS_NO_POLICY' END AS issue
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname = ANY (CAST(:schemas AS text[]))
  AND (NOT c.relrowsecurity OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
ORDER BY 1, 2
