-- Sessions idle in transaction longer than :min_idle_s seconds (leaks: they hold a connection, locks and snapshots).
SELECT pid,
       usename                                                        AS role,
       coalesce(nullif(application_name, ''), '(none)')               AS application,
       host(client_addr)                                              AS client,
       backend_start,
       round(extract(epoch FROM now() - state_change)::numeric, 1)    AS idle_s,
       round(extract(epoch FROM now() - xact_start)::numeric, 1)      AS transaction_s,
       left(query, 200)                                               AS last_query,
       state,
       xact_start,
       state_change
FROM pg_catalog.pg_stat_activity
WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND backend_type = 'client backend'
  AND now() - state_change > make_interval(secs => :min_idle_s)
  AND (CAST(:application AS text) IS NULL OR application_name = CAST(:application AS text))
ORDER BY state_change
