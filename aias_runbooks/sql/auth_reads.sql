-- Whether the monitor's views of Supabase Auth's tables (aias_runbooks.auth_*) can see rows: Auth enables row level security on its tables, so a view sees rows only when its owner bypasses it.
SELECT v.view_name,
       c.oid IS NOT NULL                                                      AS present,
       pg_catalog.pg_get_userbyid(c.relowner)                                 AS owner,
       coalesce(r.rolsuper OR r.rolbypassrls, false)                          AS owner_bypasses_rls,
       c.oid IS NOT NULL AND pg_catalog.has_table_privilege(c.oid, 'SELECT')  AS can_select
FROM unnest(CAST(:views AS text[])) AS v(view_name)
LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(v.view_name)
LEFT JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
ORDER BY v.view_name
