-- Indexes no scan has used since the statistics began (idx_scan = 0) with their table's size, leaving out those that enforce something (unique, primary key, exclusion, a constraint's) or are invalid; each row carries since when the statistics count (pg_stat_database.stats_reset, else the server's start: a reset makes every index look unused), and one row with no index carries it when there is none.
WITH since AS (
    SELECT coalesce(d.stats_reset, pg_catalog.pg_postmaster_start_time()) AS stats_since,
           d.stats_reset IS NULL AS since_start
    FROM pg_catalog.pg_stat_database d
    WHERE d.datname = pg_catalog.current_database()
), unused AS (
    SELECT u.indexrelid, u.relid, u.schemaname, u.relname, u.indexrelname
    FROM pg_catalog.pg_stat_user_indexes u
    JOIN pg_catalog.pg_index x ON x.indexrelid = u.indexrelid
    WHERE u.idx_scan = 0 AND x.indisvalid AND NOT x.indisunique AND NOT x.indisexclusion AND NOT x.indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = u.indexrelid)
)
SELECT u.schemaname || '.' || u.indexrelname                          AS index_name,
       u.schemaname || '.' || u.relname                               AS table_name,
       pg_catalog.pg_relation_size(u.indexrelid)                      AS index_bytes,
       pg_catalog.pg_table_size(u.relid)                              AS table_bytes,
       t.n_tup_ins + t.n_tup_upd + t.n_tup_del                        AS writes_since,
       pg_catalog.pg_get_indexdef(u.indexrelid)                       AS definition,
       s.stats_since, s.since_start,
       round(extract(epoch FROM now() - s.stats_since)::numeric / 86400, 2) AS stats_age_days
FROM since s
LEFT JOIN unused u ON true
LEFT JOIN pg_catalog.pg_stat_user_tables t ON t.relid = u.relid
ORDER BY table_bytes DESC NULLS LAST, index_bytes DESC, index_name
