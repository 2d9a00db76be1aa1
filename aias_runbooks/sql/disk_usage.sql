-- What takes the database's disk: each database's size (pg_database_size; pg_read_all_stats may read every one) the WAL's normal ceiling (max_wal_size, in bytes) and whether this role could read the WAL directory's actual size (pg_ls_waldir: members of pg_monitor only, so not read here).
WITH wal AS (
    SELECT pg_catalog.pg_has_role('pg_monitor', 'MEMBER') AS readable
)
SELECT d.datname                                                        AS database,
       pg_catalog.pg_database_size(d.oid)                               AS database_bytes,
       d.datname = pg_catalog.current_database()                        AS current,
       w.readable                                                       AS wal_readable,
       (SELECT s.setting::bigint * 1024 * 1024 FROM pg_catalog.pg_settings s WHERE s.name = 'max_wal_size') AS max_wal_bytes,
       current_user                                                     AS reader
FROM pg_catalog.pg_database d
CROSS JOIN wal w
WHERE d.datallowconn AND NOT d.datistemplate
ORDER BY database_bytes DESC, database
