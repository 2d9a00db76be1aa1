-- Per table: sequential vs index scans and rows read by seq scans; large tables read mostly by seq scan lack an index. The top :limit by rows read by seq scans, plus every table the seq-scan check flags (:min_rows rows, :min_scans seq scans, under :max_index_pct % index use); sizes only for those.
WITH tables AS (
    SELECT s.relid, s.schemaname, s.relname, c.reltuples::bigint AS live_rows, s.seq_scan, s.seq_tup_read,
           coalesce(s.idx_scan, 0) AS idx_scan,
           round(100.0 * coalesce(s.idx_scan, 0) / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0), 1) AS index_use_pct
    FROM pg_catalog.pg_stat_user_tables s
    JOIN pg_catalog.pg_class c ON c.oid = s.relid
), ranked AS (
    SELECT tables.*,
           (live_rows >= :min_rows AND seq_scan >= :min_scans AND coalesce(index_use_pct, 0) < :max_index_pct) AS flagged,
           row_number() OVER (ORDER BY seq_tup_read DESC, relid) AS rank
    FROM tables
)
SELECT schemaname || '.' || relname                 AS table_name,
       live_rows,
       seq_scan,
       seq_tup_read,
       idx_scan,
       index_use_pct,
       pg_size_pretty(pg_relation_size(relid))      AS table_size
FROM ranked
WHERE rank <= :limit OR flagged
ORDER BY rank
