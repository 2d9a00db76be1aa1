-- Queries running for more than :min_seconds seconds, longest first (this session excluded).
SELECT pid,
       usename                                                        AS role,
       coalesce(nullif(application_name, ''), '(none)')               AS application,
       round(extract(epoch FROM now() - query_start)::numeric, 1)     AS running_s,
       coalesce(wait_event_type || ': ' || wait_event, 'on CPU')      AS waiting_on,
       left(query, 200)                                               AS query
FROM pg_catalog.pg_stat_activity
WHERE state = 'active'
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND now() - query_start > make_interval(secs => :min_seconds)
ORDER BY query_start
