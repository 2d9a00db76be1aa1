-- Idle root blockers: idle sessions (in a transaction or not) that wait on nothing themselves and block others, either for longer than :min_blocked_s seconds or, idle for :min_holder_idle_s seconds or more, at all.
SELECT a.pid,
       a.usename                                                        AS role,
       coalesce(nullif(a.application_name, ''), '(none)')               AS application,
       host(a.client_addr)                                              AS client,
       a.backend_start,
       round(extract(epoch FROM now() - a.state_change)::numeric, 1)    AS idle_s,
       round(extract(epoch FROM now() - a.xact_start)::numeric, 1)      AS transaction_s,
       left(a.query, 200)                                               AS last_query,
       a.state,
       a.xact_start,
       a.state_change,
       w.blocked_sessions,
       w.longest_wait_s,
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted) AS holds_advisory
FROM pg_catalog.pg_stat_activity a
JOIN LATERAL (
  SELECT count(*)                                                              AS blocked_sessions,
         round(max(extract(epoch FROM now() - b.query_start))::numeric, 1)     AS longest_wait_s
  FROM pg_catalog.pg_stat_activity b
  WHERE a.pid = ANY (pg_blocking_pids(b.pid))
) AS w ON w.blocked_sessions > 0
WHERE a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
  AND a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND cardinality(pg_blocking_pids(a.pid)) = 0
  AND (w.longest_wait_s > :min_blocked_s OR now() - a.state_change >= make_interval(secs => :min_holder_idle_s))
  AND (CAST(:application AS text) IS NULL OR a.application_name = CAST(:application AS text))
ORDER BY w.longest_wait_s DESC, a.pid
