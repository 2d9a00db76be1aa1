"""Fault helpers that make scenarios real: leaked transactions, exhausted slots, lock queues, a slow workload.

Run as `python -m aias_runbooks.sandbox.faults KIND READY_FILE` with AIAS_SANDBOX_DATABASE_URL set. It
establishes the fault, touches READY_FILE, and holds the fault until it is terminated; its connections
close with it, so stopping the process undoes the fault.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
from pathlib import Path

import psycopg

LEAKED_SESSIONS = 8
DASHBOARD_QUERY = """
SELECT w.id, w.name,
       (SELECT count(*) FROM workflow_executions e WHERE e.workflow_id = w.id) AS runs
FROM workflows w
WHERE w.tenant_id IN (SELECT id FROM tenants ORDER BY slug OFFSET %s LIMIT 8)
ORDER BY runs DESC
LIMIT 20
"""


def _connect(app: str, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(os.environ["AIAS_SANDBOX_DATABASE_URL"], application_name=app, autocommit=autocommit)


def leak(held: list) -> None:
    """Sessions that began a transaction and never finished it: idle in transaction, holding snapshots."""
    for _ in range(LEAKED_SESSIONS):
        conn = _connect("aias-api/export-worker")
        conn.execute("SELECT id FROM workflows ORDER BY created_at DESC LIMIT 1")
        held.append(conn)


def exhaust(held: list) -> None:
    """Open connections until the server refuses: every slot, reserved ones included, is taken."""
    while True:
        try:
            held.append(_connect("aias-api", autocommit=True))
        except psycopg.OperationalError as exc:
            if "too many clients" in str(exc) or "remaining connection slots" in str(exc):
                return
            raise


def block(held: list) -> None:
    """A lock queue: an open transaction holds a row; an UPDATE, a migration (DDL) and a read queue behind it."""
    holder = _connect("aias-api/billing-job")
    row = holder.execute("SELECT id FROM workflows ORDER BY id LIMIT 1").fetchone()[0]
    holder.execute("UPDATE workflows SET updated_at = now() WHERE id = %s", (row,))
    held.append(holder)
    waiters = [("aias-api", "UPDATE workflows SET updated_at = now() WHERE id = %s", (row,)),
               ("supabase-migrations", "ALTER TABLE workflows ADD COLUMN archived_reason text", None),
               ("aias-api", "SELECT count(*) FROM workflows", None)]
    for waiting, (app, sql, params) in enumerate(waiters, 1):
        conn = _connect(app)            # not autocommit: whatever completes when the holder dies rolls back
        held.append(conn)
        threading.Thread(target=_wait_on, args=(conn, sql, params), daemon=True).start()
        _until_waiting(waiting)


def _wait_on(conn: psycopg.Connection, sql: str, params) -> None:
    with contextlib.suppress(psycopg.Error):   # ends when the process is stopped
        conn.execute(sql, params)


def _until_waiting(sessions: int, timeout: float = 10) -> None:
    """Queue the waiters in order: each must be waiting before the next one starts."""
    with _connect("aias-sandbox/faults", autocommit=True) as probe:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0] \
                    >= sessions:
                return
            time.sleep(0.05)
    raise RuntimeError(f"only fewer than {sessions} sessions are waiting on locks")


def slow_workload(held: list, ready: Path) -> None:
    """Drop the index behind a dashboard query and run it in a loop: real seq scans, real pg_stat_statements."""
    with _connect("aias-sandbox/faults", autocommit=True) as admin:
        admin.execute("DROP INDEX IF EXISTS workflow_executions_workflow_id_idx")
    conn = _connect("aias-api/dashboard", autocommit=True)
    held.append(conn)
    calls = 0
    while True:
        conn.execute(DASHBOARD_QUERY, (random.randrange(0, 32),)).fetchall()
        calls += 1
        if calls == 5:
            ready.touch()
        time.sleep(0.2)


def main() -> None:
    kind, ready = sys.argv[1], Path(sys.argv[2])
    held: list = []
    if kind == "slow-workload":
        slow_workload(held, ready)
        return
    {"leak": leak, "exhaust": exhaust, "block": block}[kind](held)
    ready.touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
