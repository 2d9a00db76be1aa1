"""Database sessions that make the sandbox real: the application's everyday read traffic, and the faults
of scenarios (leaked transactions, exhausted slots, lock queues, a slow workload).

Run as `python -m aias_runbooks.sandbox.workloads KIND READY_FILE` with AIAS_SANDBOX_APP_DATABASE_URL and
AIAS_SANDBOX_ADMIN_DATABASE_URL set. It sets up its sessions, touches READY_FILE, and keeps them until it is
terminated; its connections close with it, so stopping the process undoes the fault.

The application's sessions connect as the application role aias_app, as on Supabase, so a runbook's guarded
action (pg_signal_backend, which cannot signal a superuser) can end them. Only what really needs it runs as
the superuser: filling the reserved slots too, a migration's DDL (run by the owner), dropping an index.
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

from .scenarios import FLUSH_STATS_SQL

LEAKED_SESSIONS = 8
DASHBOARD_QUERY = """
SELECT w.id, w.name,
       (SELECT count(*) FROM workflow_executions e WHERE e.workflow_id = w.id) AS runs
FROM workflows w
WHERE w.tenant_id IN (SELECT id FROM tenants ORDER BY slug OFFSET %s LIMIT 8)
ORDER BY runs DESC
LIMIT 20
"""


def _connect(app: str, autocommit: bool = False, admin: bool = False) -> psycopg.Connection:
    """A session of the application (aias_app), or with admin=True of the superuser."""
    dsn = os.environ["AIAS_SANDBOX_ADMIN_DATABASE_URL" if admin else "AIAS_SANDBOX_APP_DATABASE_URL"]
    return psycopg.connect(dsn, application_name=app, autocommit=autocommit)


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
    conn = _connect("aias-api", autocommit=True)
    conn.execute("SET statement_timeout = '2s'")
    ids = {kind: [row[0] for row in conn.execute(sql).fetchall()] for kind, sql in [
        ("profile", "SELECT id FROM profiles"), ("tenant", "SELECT id FROM tenants"),
        ("workflow", "SELECT id FROM workflows")]}
    for kind, sql in APP_QUERIES:   # a platform that has been running has its working set in memory
        for key in ids[kind]:
            conn.execute(sql, (key,)).fetchall()
    conn.execute(FLUSH_STATS_SQL)   # the warm-up is counted now, before `sandbox up` resets the statistics
    conn.execute("SELECT 1")
    ready.touch()
    while True:
        for kind, sql in APP_QUERIES:
            with contextlib.suppress(psycopg.errors.QueryCanceled):   # stalled behind a lock: retry
                conn.execute(sql, (random.choice(ids[kind]),)).fetchall()
        time.sleep(0.1)


def leak(held: list) -> None:
    """Sessions that began a transaction and never finished it: idle in transaction, holding snapshots."""
    for _ in range(LEAKED_SESSIONS):
        conn = _connect("aias-api/export-worker")
        conn.execute("SELECT id FROM workflows ORDER BY created_at DESC LIMIT 1")
        held.append(conn)


def exhaust(held: list) -> None:
    """Open connections until the server refuses: every slot, reserved ones included (so as the superuser), is taken."""
    while True:
        try:
            held.append(_connect("aias-api", autocommit=True, admin=True))
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
    waiters = [("aias-api", "UPDATE workflows SET updated_at = now() WHERE id = %s", (row,), False),
               ("supabase-migrations", "ALTER TABLE workflows ADD COLUMN archived_reason text", None, True),
               ("aias-api", "SELECT count(*) FROM workflows", None, False)]
    for waiting, (app, sql, params, owner) in enumerate(waiters, 1):
        conn = _connect(app, admin=owner)   # not autocommit: whatever completes when the holder dies rolls back
        held.append(conn)
        threading.Thread(target=_wait_on, args=(conn, sql, params), daemon=True).start()
        _until_waiting(waiting)


def _wait_on(conn: psycopg.Connection, sql: str, params) -> None:
    with contextlib.suppress(psycopg.Error):   # ends when the process is stopped
        conn.execute(sql, params)


def _until_waiting(sessions: int, timeout: float = 10) -> None:
    """Queue the waiters in order: each must be waiting before the next one starts."""
    with _connect("aias-sandbox/workloads", autocommit=True, admin=True) as probe:   # sees every role's waits
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0] \
                    >= sessions:
                return
            time.sleep(0.05)
    raise RuntimeError(f"only fewer than {sessions} sessions are waiting on locks")


def slow_workload(held: list, ready: Path) -> None:
    """Drop the index behind a dashboard query and run it in a loop: real seq scans, real pg_stat_statements."""
    with _connect("aias-sandbox/workloads", autocommit=True, admin=True) as admin:
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
    if kind == "traffic":
        traffic(ready)
        return
    if kind == "slow-workload":
        slow_workload(held, ready)
        return
    {"leak": leak, "exhaust": exhaust, "block": block}[kind](held)
    ready.touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
