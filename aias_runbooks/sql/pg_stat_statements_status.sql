-- Whether pg_stat_statements is installed (and where) and preloaded; slow-query evidence needs both.
SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements')                 AS version,
       (SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements') AS schema,
       current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'                    AS preloaded,
       current_setting('server_version_num')::int                                                 AS server_version_num
