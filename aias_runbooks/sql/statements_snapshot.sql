-- Cumulative calls and execution time per statement (queryid) of this database, without query texts: one snapshot of the slow-query window.
SELECT queryid::text                  AS queryid,
       sum(calls)::bigint             AS calls,
       sum(total_exec_time)::float8   AS total_ms
FROM :"statements_schema".pg_stat_statements(false)
WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND queryid IS NOT NULL
GROUP BY queryid
