-- Statements by total execution time since the statistics were reset (lifetime) from pg_stat_statements: the top :limit chosen first, then only those formatted; I/O timing read by name through to_jsonb so one query serves PostgreSQL 13-17 (17 renamed blk_*_time to shared_blk_*_time).
WITH top AS (
    SELECT s AS r, queryid, calls, total_exec_time, mean_exec_time, rows, shared_blks_hit, shared_blks_read, query,
           100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
    FROM :"statements_schema".pg_stat_statements s
    WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND calls >= :min_calls
      AND query NOT LIKE '%pg_stat_statements%'
    ORDER BY total_exec_time DESC
    LIMIT :limit
)
SELECT queryid::text                                                             AS queryid,
       calls,
       round(total_exec_time::numeric, 1)                                        AS total_ms,
       round(mean_exec_time::numeric, 1)                                         AS mean_ms,
       round(share::numeric, 1)                                                  AS share_pct,
       rows,
       round((coalesce((to_jsonb(r) ->> 'shared_blk_read_time')::float8, (to_jsonb(r) ->> 'blk_read_time')::float8, 0)
            + coalesce((to_jsonb(r) ->> 'shared_blk_write_time')::float8, (to_jsonb(r) ->> 'blk_write_time')::float8, 0)
             )::numeric, 1)                                                      AS sync_io_ms,
       round((100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0))::numeric, 1) AS cache_hit_pct,
       left(regexp_replace(query, '\s+', ' ', 'g'), 300)                         AS query
FROM top
ORDER BY total_exec_time DESC
