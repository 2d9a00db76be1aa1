-- Client connections grouped by state, role, application_name and client address, most connections first (also what the refused runbook tells a superuser to run from a reserved slot).
SELECT coalesce(state, 'unknown')                          AS state,
       coalesce(usename, '-')                              AS role,
       coalesce(nullif(application_name, ''), '(none)')    AS application,
       coalesce(host(client_addr), 'local socket')         AS client,
       count(*)::int                                       AS connections,
       round(extract(epoch FROM max(now() - state_change))::numeric, 1) AS oldest_state_s
FROM pg_catalog.pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2, 3, 4
ORDER BY connections DESC, state
