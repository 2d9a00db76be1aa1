-- The connected role as the runbooks need it: superuser or not, its predefined roles, and this session's read-only state and timeouts.
SELECT current_user                                                  AS role,
       r.rolsuper                                                    AS superuser,
       r.rolbypassrls                                                AS bypass_rls,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')       AS pg_read_all_stats,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')    AS pg_read_all_settings,
       pg_has_role(current_user, 'pg_monitor', 'USAGE')              AS pg_monitor,
       pg_has_role(current_user, 'pg_signal_backend', 'USAGE')       AS pg_signal_backend,
       current_setting('default_transaction_read_only')              AS default_transaction_read_only,
       current_setting('transaction_read_only')                      AS transaction_read_only,
       current_setting('statement_timeout')                          AS statement_timeout,
       current_setting('lock_timeout')                               AS lock_timeout,
       current_setting('server_version')                             AS server_version
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user
