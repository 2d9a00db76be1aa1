-- Client connections per login role, with their applications, against the role's own limit (rolconnlimit, -1 for none) and the server's (max_connections less superuser_reserved_connections).
WITH server AS (
    SELECT pg_catalog.current_setting('max_connections')::int                AS max_connections,
           pg_catalog.current_setting('superuser_reserved_connections')::int AS reserved
), by_application AS (
    SELECT a.usesysid, coalesce(nullif(a.application_name, ''), '(none)') AS application, count(*) AS connections
    FROM pg_catalog.pg_stat_activity a
    WHERE a.backend_type = 'client backend'
    GROUP BY a.usesysid, 2
)
SELECT r.rolname                                                     AS role_name,
       r.rolconnlimit                                                AS role_limit,
       s.max_connections - s.reserved                                AS server_limit,
       coalesce(sum(b.connections), 0)::int                          AS connections,
       coalesce(pg_catalog.jsonb_object_agg(b.application, b.connections ORDER BY b.application)
                    FILTER (WHERE b.application IS NOT NULL), '{}')  AS applications,
       r.rolsuper                                                    AS superuser
FROM pg_catalog.pg_roles r
CROSS JOIN server s
LEFT JOIN by_application b ON b.usesysid = r.oid
WHERE r.rolcanlogin
GROUP BY r.rolname, r.rolconnlimit, s.max_connections, s.reserved, r.rolsuper
ORDER BY connections DESC, role_name
