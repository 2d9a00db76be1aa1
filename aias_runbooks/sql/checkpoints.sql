-- Checkpoints since the statistics of the background writer were reset: started by checkpoint_timeout (timed) or requested (WAL reached max_wal_size, or a CHECKPOINT command); read through to_jsonb, so a server whose pg_stat_bgwriter has no such column (PostgreSQL 17 moved them to pg_stat_checkpointer) answers null.
SELECT (to_jsonb(b) ->> 'checkpoints_timed')::bigint                        AS timed,
       (to_jsonb(b) ->> 'checkpoints_req')::bigint                          AS requested,
       b.stats_reset                                                        AS stats_since,
       round(extract(epoch FROM now() - b.stats_reset)::numeric / 3600, 1)  AS stats_age_hours,
       pg_catalog.current_setting('max_wal_size')                           AS max_wal_size,
       pg_catalog.current_setting('checkpoint_timeout')                     AS checkpoint_timeout
FROM pg_catalog.pg_stat_bgwriter b
