-- ACTION: terminate the listed backends, only if each is still the same session (pid + backend_start) and still idle in transaction.
SELECT a.pid, a.application_name AS application, pg_terminate_backend(a.pid) AS terminated
FROM pg_stat_activity a
JOIN unnest(CAST(:pids AS int[]), CAST(:backend_starts AS timestamptz[])) AS t(pid, backend_start)
  ON a.pid = t.pid AND a.backend_start = t.backend_start
WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')
