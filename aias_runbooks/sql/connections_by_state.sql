-- Client connections grouped by state, role and application_name, oldest state change first.
SELECT coalesce(state, 'unknown')                          AS state,
       coalesce(usename, '-')                              AS role,
       coalesce(nullif(application_name, ''), '(none)')    AS application,
       count(*)::int                                       AS connections,
       round(extract(epoch FROM max(now() - state_change))::numeric, 1) AS oldest_state_s
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2, 3
ORDER BY connections DESC, state
