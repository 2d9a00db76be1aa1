-- Tables in exposed schemas without row level security, or with RLS enabled but no policy for a role the app uses (Supabase's anon, authenticated, service_role, or PUBLIC): a policy only for another role, such as our monitoring role, leaves the app's users nothing.
SELECT n.nspname                 AS schema,
       c.relname                 AS table_name,
       CASE WHEN NOT c.relrowsecurity THEN 'RLS_DISABLED' ELSE 'RLS_NO_POLICY' END AS issue,
       (SELECT coalesce(string_agg(DISTINCT CASE WHEN r.role = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r.role)
                                            END, ', '), '')
        FROM pg_catalog.pg_policy p CROSS JOIN LATERAL unnest(p.polroles) AS r(role)
        WHERE p.polrelid = c.oid) AS policy_roles
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname = ANY (CAST(:schemas AS text[]))
  AND (NOT c.relrowsecurity OR NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_policy p CROSS JOIN LATERAL unnest(p.polroles) AS r(role)
        WHERE p.polrelid = c.oid
          AND (r.role = 0 OR pg_catalog.pg_get_userbyid(r.role) IN ('anon', 'authenticated', 'service_role'))))
ORDER BY 1, 2
