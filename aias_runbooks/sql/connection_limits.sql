-- The server's connection limits and how many client backends other than this session use them now (usable = max - reserved slots), its version, and whether this role may use the slots reserved_connections keeps (PostgreSQL 16+).
SELECT current_setting('max_connections')::int                                  AS max_connections,
       current_setting('superuser_reserved_connections')::int                   AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true), '0')::int        AS role_reserved,
       current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(current_setting('reserved_connections', true), '0')::int    AS usable,
       (SELECT count(*) FROM pg_catalog.pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int AS in_use,
       current_setting('server_version_num')::int                               AS server_version_num,
       coalesce((SELECT pg_has_role(current_user, r.oid, 'USAGE') FROM pg_catalog.pg_roles r
                 WHERE r.rolname = 'pg_use_reserved_connections'), false)       AS uses_reserved_slots
