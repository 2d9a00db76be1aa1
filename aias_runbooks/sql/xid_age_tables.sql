-- The :limit tables of this database oldest against their freeze point: transaction ID and multixact age of each table (and TOAST table) as a share of its autovacuum_freeze_max_age (its own storage parameter when lower than the server's, as autovacuum reads it).
WITH limits AS (
    SELECT current_setting('autovacuum_freeze_max_age')::bigint            AS xid_max,
           current_setting('autovacuum_multixact_freeze_max_age')::bigint  AS mxid_max
), tables AS (
    SELECT c.oid, coalesce(owner.oid, c.oid) AS table_oid, c.relkind = 't' AS toast,
           pg_catalog.age(c.relfrozenxid)::bigint AS xid_age,
           pg_catalog.mxid_age(c.relminmxid)::bigint AS mxid_age,
           least(l.xid_max, (SELECT split_part(o, '=', 2)::bigint FROM unnest(c.reloptions) AS o
                             WHERE o LIKE 'autovacuum\_freeze\_max\_age=%'))   AS xid_freeze_max_age,
           least(l.mxid_max, (SELECT split_part(o, '=', 2)::bigint FROM unnest(c.reloptions) AS o
                              WHERE o LIKE 'autovacuum\_multixact\_freeze\_max\_age=%')) AS mxid_freeze_max_age,
           greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum
    FROM pg_catalog.pg_class c
    CROSS JOIN limits l
    LEFT JOIN pg_catalog.pg_class owner ON c.relkind = 't' AND owner.reltoastrelid = c.oid
    LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'm', 't') AND NOT pg_catalog.pg_is_other_temp_schema(c.relnamespace)
)
SELECT n.nspname || '.' || tc.relname                                         AS table_name,
       t.toast,
       t.xid_age,
       t.xid_freeze_max_age,
       round(100.0 * t.xid_age / t.xid_freeze_max_age, 1)                      AS xid_pct,
       t.mxid_age,
       t.mxid_freeze_max_age,
       round(100.0 * t.mxid_age / t.mxid_freeze_max_age, 1)                    AS mxid_pct,
       t.last_vacuum,
       pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(t.table_oid))        AS table_size
FROM tables t
JOIN pg_catalog.pg_class tc ON tc.oid = t.table_oid
JOIN pg_catalog.pg_namespace n ON n.oid = tc.relnamespace
ORDER BY greatest(t.xid_age::numeric / t.xid_freeze_max_age, t.mxid_age::numeric / t.mxid_freeze_max_age) DESC,
         t.oid
LIMIT :limit
