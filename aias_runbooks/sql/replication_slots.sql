-- Replication slots: active or not, the WAL each retains (its restart_lsn to the current WAL position), wal_status and safe_wal_size under max_slot_wal_keep_size (MB, -1: no limit), a logical slot's lag behind its confirmed_flush_lsn.
WITH here AS (
    SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()
                ELSE pg_catalog.pg_current_wal_lsn() END AS lsn,
           (SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'max_slot_wal_keep_size') AS keep_mb
)
SELECT s.slot_name,
       s.slot_type,
       s.plugin,
       s.database,
       s.active,
       s.wal_status,
       pg_catalog.pg_wal_lsn_diff(h.lsn, s.restart_lsn)::bigint          AS retained_bytes,
       s.safe_wal_size                                                    AS safe_wal_bytes,
       pg_catalog.pg_wal_lsn_diff(h.lsn, s.confirmed_flush_lsn)::bigint  AS lag_bytes,
       pg_catalog.age(s.xmin)::bigint                                     AS xmin_age,
       pg_catalog.age(s.catalog_xmin)::bigint                             AS catalog_xmin_age,
       h.keep_mb                                                          AS max_slot_wal_keep_mb
FROM pg_catalog.pg_replication_slots s CROSS JOIN here h
ORDER BY pg_catalog.pg_wal_lsn_diff(h.lsn, s.restart_lsn) DESC NULLS LAST, s.slot_name
