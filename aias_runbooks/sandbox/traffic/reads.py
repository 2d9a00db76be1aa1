"""The application's everyday database traffic: index-backed reads a few dozen a second, and brief row-lock waits
on a hot row, as on a busy OLTP database: live statistics for the runbooks on a healthy platform.

Run as `python -m aias_runbooks.sandbox.traffic.reads READY_FILE` with AIAS_SANDBOX_APP_DATABASE_URL set: it sets
up its sessions, touches READY_FILE, and keeps going until it is terminated. Its sessions connect as the
application role aias_app, as on Supabase, and outlive database errors (platform/sessions.py).
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from pathlib import Path

import psycopg

from ..platform.database.stats import FLUSH_STATS_SQL
from ..platform.sessions import Session

# Everyday contention on one hot row: the request path locks it briefly several times a second, and now and
# then a job updates it and holds it this long, so the request path waits up to that long: brief waits, well
# under blocked_warning_s (and, idle in transaction meanwhile, under any leak criterion of 2 s or more), and rare
# enough that the hot statement's mean stays far under the 100 ms latency target.
CONTENTION_HOLD_S = (0.2, 1.0)
CONTENTION_PAUSE_S = (4.0, 8.0)    # between two of the job's updates
HOT_ROW_EVERY_S = 0.1              # the request path's short transactions on the row
APP_QUERIES = [
    ("profile", "SELECT id, email, full_name, tenant_id FROM profiles WHERE id = %s"),
    ("tenant", "SELECT id, name, status FROM workflows WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 20"),
    ("workflow", "SELECT status, count(*) FROM workflow_executions WHERE workflow_id = %s GROUP BY status"),
    ("profile", "SELECT tier, status, current_period_end FROM subscription_tiers WHERE user_id = %s"),
]


def traffic(ready: Path) -> None:
    """The application's everyday reads, index-backed, a few dozen a second: live statistics for the runbooks.

    Its statements time out after 2 s, so during a lock incident it stalls and retries like a real app.
    """
    reads = Session("reads", "aias-api", ["SET statement_timeout = '2s'"], autocommit=True)
    conn = reads.connection()   # a failure here fails `sandbox up`, which waits for READY_FILE
    ids = {kind: [row[0] for row in conn.execute(sql).fetchall()] for kind, sql in [
        ("profile", "SELECT id FROM profiles"), ("tenant", "SELECT id FROM tenants"),
        ("workflow", "SELECT id FROM workflows")]}
    for kind, sql in APP_QUERIES:   # a platform that has been running has its working set in memory
        for key in ids[kind]:
            conn.execute(sql, (key,)).fetchall()
    conn.execute(FLUSH_STATS_SQL)   # the warm-up is counted now, before `sandbox up` resets the statistics
    conn.execute("SELECT 1")
    threading.Thread(target=_contention, daemon=True).start()
    ready.touch()
    while True:
        for kind, sql in APP_QUERIES:
            reads.run(_read, sql, random.choice(ids[kind]))
        time.sleep(0.1)


def _read(conn: psycopg.Connection, sql: str, key) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):   # stalled behind a lock: retry
        conn.execute(sql, (key,)).fetchall()


def _contention() -> None:
    """Row-lock waits that come and go, as on a busy OLTP database: the request path locks one hot row in short
    transactions (SELECT ... FOR UPDATE: no dead rows) while a job now and then updates it and holds it for
    CONTENTION_HOLD_S, so the request path waits that long. Both sessions stay open (a steady connection
    count); a wait never outlasts lock_timeout (3 s), e.g. behind a scenario's DDL."""
    setup = ["SET lock_timeout = '3s'", "SET statement_timeout = '3s'"]
    request, job = Session("hot-row", "aias-api", setup), Session("sync-job", "aias-api/sync-job", setup)
    # not the first or the last workflow, which scenarios and tests lock
    row = request.run(_hot_row)
    threading.Thread(target=_job_holds_row, args=(job, row), daemon=True).start()
    while True:
        request.run(_in_transaction, "SELECT updated_at FROM workflows WHERE id = %s FOR UPDATE", row, 0)
        time.sleep(HOT_ROW_EVERY_S)


def _hot_row(conn: psycopg.Connection):
    row = conn.execute("SELECT id FROM workflows ORDER BY id OFFSET 7 LIMIT 1").fetchone()[0]
    conn.commit()
    return row


def _job_holds_row(job: Session, row) -> None:
    job.run(_opened)   # the job's session is open from the start: a steady connection count
    while True:
        time.sleep(random.uniform(*CONTENTION_PAUSE_S))
        job.run(_in_transaction, "UPDATE workflows SET updated_at = now() WHERE id = %s", row,
                random.uniform(*CONTENTION_HOLD_S))


def _opened(conn: psycopg.Connection) -> None:
    pass


def _in_transaction(conn: psycopg.Connection, sql: str, row, hold_s: float) -> None:
    """Run the statement, keep the transaction (and its row lock) hold_s seconds, commit. A wait past lock_timeout
    or statement_timeout rolls back (the session is fine: next time); any other error is raised, for the session
    to reconnect (a failed rollback too)."""
    try:
        conn.execute(sql, (row,))
        if hold_s:
            time.sleep(hold_s)
        conn.commit()
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        conn.rollback()


def main() -> None:
    traffic(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
