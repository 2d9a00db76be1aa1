-- What holds the transaction ID horizon back (vacuum can neither remove nor freeze rows newer than it): sessions' open snapshots, prepared transactions, replication slots' xmin and catalog_xmin, standbys' feedback; the :limit oldest.
SELECT kind, holder, xmin_age, since, detail
FROM (
    SELECT 'session' AS kind,
           format('pid %s (%s, %s)', a.pid, coalesce(a.usename::text, a.backend_type), a.application_name) AS holder,
           pg_catalog.age(a.backend_xmin)::bigint AS xmin_age, a.xact_start AS since, a.state AS detail
    FROM pg_catalog.pg_stat_activity a
    WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
    UNION ALL
    SELECT 'prepared transaction', p.gid, pg_catalog.age(p.transaction)::bigint, p.prepared,
           format('owner %s, database %s', p.owner, p.database)
    FROM pg_catalog.pg_prepared_xacts p
    UNION ALL
    SELECT 'replication slot', r.slot_name, pg_catalog.age(r.xmin)::bigint, NULL,
           format('%s slot, %s', r.slot_type, CASE WHEN r.active THEN 'active' ELSE 'inactive' END)
    FROM pg_catalog.pg_replication_slots r WHERE r.xmin IS NOT NULL
    UNION ALL
    SELECT 'replication slot (catalog_xmin)', r.slot_name, pg_catalog.age(r.catalog_xmin)::bigint, NULL,
           format('%s slot, %s', r.slot_type, CASE WHEN r.active THEN 'active' ELSE 'inactive' END)
    FROM pg_catalog.pg_replication_slots r WHERE r.catalog_xmin IS NOT NULL
    UNION ALL
    SELECT 'standby feedback', coalesce(w.application_name, w.pid::text), pg_catalog.age(w.backend_xmin)::bigint,
           w.backend_start, format('state %s', w.state)
    FROM pg_catalog.pg_stat_replication w WHERE w.backend_xmin IS NOT NULL
) AS holders
ORDER BY xmin_age DESC, kind, holder
LIMIT :limit
