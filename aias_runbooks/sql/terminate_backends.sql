-- ACTION: terminate ONE planned backend, in the same statement that re-checks it is unchanged since the plan; else say what changed.
-- A target is terminated only if, in this statement's view of pg_stat_activity, it is still the same session
-- (pid + backend_start), still idle in transaction, in the same transaction (xact_start), has run nothing since
-- the plan (state_change), is idle longer than the criterion and (when one was given) of the named application.
-- `changed` is NULL when all of that holds; CASE evaluates pg_terminate_backend only then (it is volatile, so
-- it is never evaluated ahead of its branch).  No row: the pid is gone.
SELECT pid,
       changed,
       CASE WHEN changed IS NULL THEN pg_terminate_backend(pid) ELSE false END AS terminated
FROM (
  SELECT a.pid,
         CASE
           WHEN a.backend_start IS DISTINCT FROM CAST(:backend_start AS timestamptz)
             THEN 'the pid now belongs to another session'
           WHEN a.state IS NULL OR a.state NOT IN ('idle in transaction', 'idle in transaction (aborted)')
             THEN 'no longer idle in transaction (now ' || coalesce(a.state, 'unknown') || ')'
           WHEN a.xact_start IS DISTINCT FROM CAST(:xact_start AS timestamptz)
             THEN 'it ended the planned transaction and began a new one'
           WHEN a.state_change IS DISTINCT FROM CAST(:state_change AS timestamptz)
             THEN 'it ran a statement'
           WHEN now() - a.state_change <= make_interval(secs => :min_idle_s)
             THEN 'idle for less than the criterion'
           WHEN CAST(:application AS text) IS NOT NULL AND a.application_name IS DISTINCT FROM CAST(:application AS text)
             THEN 'its application_name changed'
         END AS changed
  FROM pg_stat_activity a
  WHERE a.pid = CAST(:pid AS int)
  OFFSET 0
) AS target
