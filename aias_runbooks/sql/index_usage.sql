-- Per table: sequential vs index scans and rows read by seq scans; large tables read mostly by seq scan lack an index.
SELECT s.schemaname || '.' || s.relname                                                 AS table_name,
       c.reltuples::bigint                                                              AS live_rows,
       s.seq_scan,
       s.seq_tup_read,
       coalesce(s.idx_scan, 0)                                                          AS idx_scan,
       round(100.0 * coalesce(s.idx_scan, 0) / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0), 1) AS index_use_pct,
       pg_size_pretty(pg_relation_size(s.relid))                                        AS table_size
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
ORDER BY s.seq_tup_read DESC
