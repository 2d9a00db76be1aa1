-- Role-level settings that change how a role's sessions behave (timeouts, search_path, read-only, a role switch), from pg_db_role_setting, for every database or this one; only these names are read, since another setting may hold a secret (an app.* value).
SELECT coalesce(r.rolname, '(every role)')                         AS role_name,
       coalesce(d.datname, '(every database)')                     AS database,
       split_part(c.cfg, '=', 1)                                   AS setting,
       substr(c.cfg, strpos(c.cfg, '=') + 1)                       AS value,
       coalesce(r.rolcanlogin, false)                              AS can_login
FROM pg_catalog.pg_db_role_setting s
LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS c(cfg)
WHERE (s.setdatabase = 0 OR d.datname = pg_catalog.current_database())
  AND split_part(c.cfg, '=', 1) IN ('statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout',
                                    'idle_session_timeout', 'search_path', 'default_transaction_read_only', 'role')
ORDER BY role_name, database, setting
