-- ACTION: terminate ONE planned backend (a leaked session or an idle root blocker), in the same statement that re-checks it is unchanged since the plan; else say what changed.
-- A target is terminated only if, in this statement's view of pg_stat_activity, it is still the same session
-- (pid + backend_start), not this session, in the same transaction (xact_start), has run nothing since the plan
-- (state_change), (when one was given) of the named application, and still meets the criterion of its kind:
--   :kind 'leak'          still idle in transaction, idle longer than :min_idle_s;
--   :kind 'root_blocker'  still idle (in a transaction or not: an active one is never touched, cancel is the advice
--                         there), waiting on nothing, and still blocking a session: one that has waited longer than
--                         :min_blocked_s or, once it has been idle :min_holder_idle_s, any.
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
           WHEN a.pid = pg_backend_pid()
             THEN 'it is this session'
           WHEN CAST(:kind AS text) = 'root_blocker'
                AND (a.state IS NULL OR a.state NOT IN ('idle', 'idle in transaction', 'idle in transaction (aborted)'))
             THEN 'no longer idle (now ' || coalesce(a.state, 'unknown') || ')'
           WHEN CAST(:kind AS text) <> 'root_blocker'
                AND (a.state IS NULL OR a.state NOT IN ('idle in transaction', 'idle in transaction (aborted)'))
             THEN 'no longer idle in transaction (now ' || coalesce(a.state, 'unknown') || ')'
           WHEN a.xact_start IS DISTINCT FROM CAST(:xact_start AS timestamptz)
             THEN 'it ended the planned transaction and began a new one'
           WHEN a.state_change IS DISTINCT FROM CAST(:state_change AS timestamptz)
             THEN 'it ran a statement'
           WHEN CAST(:kind AS text) <> 'root_blocker' AND now() - a.state_change <= make_interval(secs => :min_idle_s)
             THEN 'idle for less than the criterion'
           WHEN CAST(:kind AS text) = 'root_blocker' AND cardinality(pg_blocking_pids(a.pid)) > 0
             THEN 'it now waits on a lock itself'
           WHEN CAST(:kind AS text) = 'root_blocker' AND NOT EXISTS (
                  SELECT 1 FROM pg_catalog.pg_stat_activity w
                   WHERE a.pid = ANY (pg_blocking_pids(w.pid))
                     AND (now() - w.query_start > make_interval(secs => :min_blocked_s)
                          OR now() - a.state_change >= make_interval(secs => :min_holder_idle_s)))
             THEN 'it no longer blocks a session for longer than the criterion'
           WHEN CAST(:application AS text) IS NOT NULL AND a.application_name IS DISTINCT FROM CAST(:application AS text)
             THEN 'its application_name changed'
         END AS changed
  FROM pg_catalog.pg_stat_activity a
  WHERE a.pid = CAST(:pid AS int)
  OFFSET 0
) AS target
