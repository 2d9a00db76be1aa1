-- Statements by execution time since a snapshot (:before, JSON [{queryid, calls, total_ms}]): top :limit by window time first, texts formatted for those only; lifetime figures as context.
WITH before AS (
    SELECT b.queryid, b.calls, b.total_ms
    FROM jsonb_to_recordset(CAST(:before AS jsonb)) AS b(queryid bigint, calls bigint, total_ms float8)
), now AS (
    SELECT queryid, sum(calls)::bigint AS calls, sum(total_exec_time)::float8 AS total_ms
    FROM :"statements_schema".pg_stat_statements(false)
    WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND queryid IS NOT NULL
    GROUP BY queryid
), delta AS (
    SELECT n.queryid, n.calls AS lifetime_calls, n.total_ms AS lifetime_ms,
           n.calls - coalesce(b.calls, 0) AS calls,
           n.total_ms - coalesce(b.total_ms, 0) AS total_ms
    FROM now n LEFT JOIN before b USING (queryid)
), top AS (
    SELECT *
    FROM (SELECT *, 100 * total_ms / nullif(sum(total_ms) OVER (), 0) AS share FROM delta WHERE calls > 0) AS ran
    WHERE calls >= :min_calls
    ORDER BY total_ms DESC
    LIMIT :limit
), texts AS (
    SELECT DISTINCT ON (queryid) queryid, query
    FROM :"statements_schema".pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND queryid IN (SELECT queryid FROM top)
)
SELECT t.queryid::text                                                AS queryid,
       t.calls::int                                                   AS calls,
       round(t.total_ms::numeric, 1)                                  AS total_ms,
       round((t.total_ms / t.calls)::numeric, 1)                      AS mean_ms,
       round(t.share::numeric, 1)                                     AS share_pct,
       t.lifetime_calls,
       round((t.lifetime_ms / nullif(t.lifetime_calls, 0))::numeric, 1) AS lifetime_mean_ms,
       left(regexp_replace(x.query, '\s+', ' ', 'g'), 300)            AS query
FROM top t LEFT JOIN texts x USING (queryid)
ORDER BY t.total_ms DESC
