-- Transaction ID and multixact age per database as a share of the age at which autovacuum forces a freeze (autovacuum_freeze_max_age, autovacuum_multixact_freeze_max_age); at 2^31 the server stops taking writes.
WITH limits AS (
    SELECT current_setting('autovacuum_freeze_max_age')::bigint            AS xid_freeze_max_age,
           current_setting('autovacuum_multixact_freeze_max_age')::bigint  AS mxid_freeze_max_age
)
SELECT d.datname                                                                            AS database,
       pg_catalog.age(d.datfrozenxid)::bigint                                                AS xid_age,
       l.xid_freeze_max_age,
       round(100.0 * pg_catalog.age(d.datfrozenxid) / l.xid_freeze_max_age, 1)               AS xid_pct,
       pg_catalog.mxid_age(d.datminmxid)::bigint                                             AS mxid_age,
       l.mxid_freeze_max_age,
       round(100.0 * pg_catalog.mxid_age(d.datminmxid) / l.mxid_freeze_max_age, 1)           AS mxid_pct,
       d.datallowconn                                                                        AS allows_connections
FROM pg_catalog.pg_database d CROSS JOIN limits l
ORDER BY greatest(pg_catalog.age(d.datfrozenxid)::numeric / l.xid_freeze_max_age,
                  pg_catalog.mxid_age(d.datminmxid)::numeric / l.mxid_freeze_max_age) DESC, d.datname
