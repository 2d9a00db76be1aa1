"""The database's statistics as a running platform has them: indexes warm in memory, counters reset after a bulk load
or a scenario that left evidence in them (pg_stat_*, pg_stat_statements)."""

from __future__ import annotations

import psycopg

# Read workflow_executions' indexes into memory, as a running platform has them: after a scenario that recreated
# one, and at `up` before the statistics reset (the worker inserts into every one of them, at random places of the
# uuid primary key: cold pages there read as a low index cache hit ratio on a healthy platform).
WARM_SQL = """
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT workflow_id FROM public.workflow_executions ORDER BY workflow_id) AS warm;
SELECT count(*) FROM (SELECT id FROM public.workflow_executions ORDER BY id) AS by_id;
SELECT count(*) FROM (SELECT status, created_at FROM public.workflow_executions
                      ORDER BY status, created_at) AS by_status;
SELECT count(*) FROM (SELECT created_at FROM public.workflow_executions ORDER BY created_at) AS by_time;
SELECT count(*) FROM (SELECT tenant_id, created_at FROM public.workflow_executions
                      ORDER BY tenant_id, created_at) AS by_tenant;
RESET enable_seqscan;
"""
# One full scan of each plain btree index of the app's schemas, in index order: a statement per index.
INDEX_SCANS_SQL = """
SELECT format('SELECT count(*) FROM (SELECT %s FROM %I.%I%s ORDER BY %s) AS warm', cols, n.nspname, t.relname,
              coalesce(' WHERE ' || pg_get_expr(i.indpred, i.indrelid), ''), cols)
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class x ON x.oid = i.indexrelid
JOIN pg_am am ON am.oid = x.relam AND am.amname = 'btree'
CROSS JOIN LATERAL (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) AS cols
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS c
WHERE n.nspname IN ('public', 'auth') AND i.indexprs IS NULL AND c.cols IS NOT NULL
"""


def warm(conn: psycopg.Connection, scale: str = "default") -> None:
    """Bring into shared buffers the indexes a running platform has there and a bulk load, a restore or a
    scenario evicted or never read. At the default scale, every index of the app's tables (the whole database
    fits in shared_buffers): the runbooks' own queries read indexes the everyday traffic never touches, and each
    first read from disk counted against database-health's index cache hit ratio, which then hovered at 99.4 %
    on a healthy sandbox after a few dozen runs. At scale large, workflow_executions' (settle() prewarms the rest)."""
    if scale != "default":
        conn.execute(WARM_SQL)
        return
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_bitmapscan = off")
    for (statement,) in conn.execute(INDEX_SCANS_SQL).fetchall():
        conn.execute(statement)
    conn.execute("RESET enable_seqscan")
    conn.execute("RESET enable_bitmapscan")


# Flush this session's pending statistics now (PostgreSQL 15+), so work done before a reset is not
# counted after it.
FLUSH_STATS_SQL = "SELECT pg_stat_force_next_flush() WHERE current_setting('server_version_num')::int >= 150000"
# Run after a scenario that left evidence in the statistics, so the next one starts from a clean baseline. The
# checkpoint counters are the cluster's (pg_stat_bgwriter): a bulk load (--scale large) requests checkpoints by
# the dozen, which database-health would read as max_wal_size too small on a healthy sandbox.
STATS_RESET_SQL = """
SELECT pg_stat_reset();
SELECT pg_stat_reset_shared('bgwriter');
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') THEN
    PERFORM extensions.pg_stat_statements_reset();
  END IF;
END $$;
"""
