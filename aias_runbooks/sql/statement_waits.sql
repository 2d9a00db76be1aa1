-- Sessions running a statement now, by statement (query_id, PostgreSQL 14+ with compute_query_id) and what they wait on: one lock-wait sample of the slow-query window.
SELECT query_id::text                         AS queryid,
       coalesce(wait_event_type, 'CPU')       AS wait_event_type,
       count(*)::int                          AS sessions
FROM pg_catalog.pg_stat_activity
WHERE state = 'active'
  AND query_id IS NOT NULL
  AND pid <> pg_backend_pid()
  AND datname = current_database()
GROUP BY 1, 2
