-- When this database's cumulative statistics (pg_stat_*, pg_statio_*) were last reset, and how long ago in seconds (null: never reset).
SELECT d.stats_reset,
       round(extract(epoch FROM now() - d.stats_reset)::numeric, 0) AS age_s
FROM pg_catalog.pg_stat_database d
WHERE d.datname = current_database()
