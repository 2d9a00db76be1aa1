-- Who waits on whom, from pg_blocking_pids: catches relation-level waits (DDL, LOCK TABLE), not only row locks; each blocker's state, since when, role and client.
SELECT blocked.pid                                                              AS blocked_pid,
       coalesce(nullif(blocked.application_name, ''), '(none)')                 AS blocked_application,
       round(extract(epoch FROM now() - blocked.query_start)::numeric, 1)       AS waiting_s,
       (SELECT string_agg(DISTINCT l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype), ', ')
          FROM pg_catalog.pg_locks l WHERE l.pid = blocked.pid AND NOT l.granted)         AS waiting_for,
       left(blocked.query, 160)                                                 AS blocked_query,
       blocker.pid                                                              AS blocking_pid,
       coalesce(nullif(blocker.application_name, ''), '(none)')                 AS blocking_application,
       blocker.state                                                            AS blocking_state,
       round(extract(epoch FROM now() - blocker.xact_start)::numeric, 1)        AS blocking_transaction_s,
       left(blocker.query, 160)                                                 AS blocking_query,
       round(extract(epoch FROM now() - blocker.state_change)::numeric, 1)      AS blocking_state_s,
       blocker.usename                                                          AS blocking_role,
       coalesce(host(blocker.client_addr), 'local socket')                      AS blocking_client,
       blocker.backend_start                                                    AS blocking_backend_start,
       blocker.xact_start                                                       AS blocking_xact_start,
       blocker.state_change                                                     AS blocking_state_change,
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                WHERE l.pid = blocker.pid AND l.locktype = 'advisory' AND l.granted)  AS blocking_holds_advisory,
       blocker.pid = pg_backend_pid()                                           AS blocking_is_us
FROM pg_catalog.pg_stat_activity blocked
CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid)
JOIN pg_catalog.pg_stat_activity blocker ON blocker.pid = b.pid
ORDER BY waiting_s DESC, blocked.pid
