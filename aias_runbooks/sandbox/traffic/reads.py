"""Database sessions that make the sandbox real: the application's everyday traffic (reads, and brief row-lock
waits on a hot row), and the faults of scenarios (leaked transactions, exhausted slots, lock queues, an idle
session holding an advisory lock, a slow workload).

Run as `python -m aias_runbooks.sandbox.traffic.reads KIND READY_FILE` with AIAS_SANDBOX_APP_DATABASE_URL and
AIAS_SANDBOX_ADMIN_DATABASE_URL set. It sets up its sessions, touches READY_FILE, and keeps them until it is
terminated; its connections close with it, so stopping the process undoes the fault.

The application's sessions connect as the application role aias_app, as on Supabase, so a runbook's guarded
action (pg_signal_backend, which cannot signal a superuser) can end them. Only what really needs it runs as
the superuser: filling the reserved slots too, a migration's DDL (run by the owner), dropping an index.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from pathlib import Path

import psycopg

from ... import thresholds
from ..platform.database.stats import FLUSH_STATS_SQL
from ..platform.sessions import Session, connect

LEAKED_SESSIONS = 8
# Everyday contention on one hot row: the request path locks it briefly several times a second, and now and
# then a job updates it and holds it this long, so the request path waits up to that long: brief waits, well
# under blocked_warning_s (and, idle in transaction meanwhile, under any leak criterion of 2 s or more), and rare
# enough that the hot statement's mean stays far under the 100 ms latency target.
CONTENTION_HOLD_S = (0.2, 1.0)
CONTENTION_PAUSE_S = (4.0, 8.0)    # between two of the job's updates
HOT_ROW_EVERY_S = 0.1              # the request path's short transactions on the row
ADVISORY_LOCK_KEY = 42
DASHBOARD_QUERY = """
SELECT w.id, w.name,
       (SELECT count(*) FROM workflow_executions e WHERE e.workflow_id = w.id) AS runs
FROM (SELECT id, name FROM workflows
      WHERE tenant_id IN (SELECT id FROM tenants ORDER BY slug OFFSET %s LIMIT 8) LIMIT %s) w
ORDER BY runs DESC
LIMIT 20
"""
# Without its index each workflow's count reads workflow_executions whole: the dashboard counts at most as many
# workflows as make DASHBOARD_ROWS row reads a call (all of 8 tenants' at the default scale; a few at 1 M
# executions, where 8 tenants' workflows took 10 s a call: too few calls in a runbook's window to be judged).
DASHBOARD_ROWS = 8_000_000

# database-health's DB_SEQ_SCAN_HOT_TABLE condition (sql/index_usage.sql, checks.db_health.seq_scans) on the table
# whose index slow-queries drops, as the statistics show it now (this backend's own counts flush at most once a second)
SEQ_SCANS_SHOW_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
               WHERE s.relid = 'public.workflow_executions'::regclass AND c.reltuples >= %s AND s.seq_scan >= %s
                 AND 100.0 * coalesce(s.idx_scan, 0) / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0) < %s)
"""


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


def leak(held: list) -> None:
    """Sessions that began a transaction and never finished it: idle in transaction, holding snapshots.

    Returns (so the scenario is ready) only once every one of them has been idle in transaction longer than the
    runbook's leak criterion (database-connection-errors' leak_min_idle_s default): a leak younger than that is
    not one yet, and a runbook run at once would rightly report DB_NO_LEAKS."""
    for _ in range(LEAKED_SESSIONS):
        conn = connect("aias-api/export-worker")
        conn.execute("SELECT id FROM workflows ORDER BY created_at DESC LIMIT 1")
        held.append(conn)
    _until_sessions([conn.info.backend_pid for conn in held], "idle in transaction", _leak_min_idle_s(),
                    "state = 'idle in transaction' AND now() - state_change > make_interval(secs => %s)")


def exhaust(held: list) -> None:
    """Open connections until the server refuses: every slot, reserved ones included (so as the superuser), is taken."""
    while True:
        try:
            held.append(connect("aias-api", autocommit=True, admin=True))
        except psycopg.OperationalError as exc:
            if "too many clients" in str(exc) or "remaining connection slots" in str(exc):
                return
            raise


def block(held: list) -> None:
    """A lock queue: an open transaction holds a row; an UPDATE, a migration (DDL) and a read queue behind it."""
    holder = connect("aias-api/billing-job")
    row = holder.execute("SELECT id FROM workflows ORDER BY id LIMIT 1").fetchone()[0]
    holder.execute("UPDATE workflows SET updated_at = now() WHERE id = %s", (row,))
    held.append(holder)
    waiters = [("aias-api", "UPDATE workflows SET updated_at = now() WHERE id = %s", (row,), False),
               ("supabase-migrations", "ALTER TABLE workflows ADD COLUMN archived_reason text", None, True),
               ("aias-api", "SELECT count(*) FROM workflows", None, False)]
    pids = []
    for app, sql, params, owner in waiters:
        conn = connect(app, admin=owner)   # not autocommit: whatever completes when the holder dies rolls back
        held.append(conn)
        pids.append(conn.info.backend_pid)
        threading.Thread(target=_wait_on, args=(conn, sql, params), daemon=True).start()
        _until_waiting(pids)
    _until_waiting(pids, longer_than=_blocked_warning_s())


def advisory_block(held: list) -> None:
    """An application session took a session-level advisory lock and went idle (not in a transaction), never
    unlocking; another session of the application waits for the same lock."""
    holder = connect("aias-api/scheduler", autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    waiter = connect("aias-api/scheduler", autocommit=True)
    held += [holder, waiter]
    threading.Thread(target=_wait_on, args=(waiter, "SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)),
                     daemon=True).start()
    _until_waiting([waiter.info.backend_pid], longer_than=_blocked_warning_s())


def _leak_min_idle_s() -> float:
    """The leak criterion the runbook applies by default: its parameter's default, the one source of the number."""
    from ...runner.parameterize import load_runbook
    return float(load_runbook("database-connection-errors").parameters["leak_min_idle_s"].default)


def _blocked_warning_s() -> float:
    """A scenario's lock waits are observable as a fault only once they pass the runbook's threshold."""
    return float(thresholds.load_thresholds()["db_connections"]["blocked_warning_s"])


def _wait_on(conn: psycopg.Connection, sql: str, params) -> None:
    with contextlib.suppress(psycopg.Error):   # ends when the process is stopped
        conn.execute(sql, params)


def _until_waiting(pids: list[int], longer_than: float = 0, timeout: float = 30) -> None:
    """Until every one of these sessions waits on a lock (for longer than `longer_than` seconds): queues the
    waiters in order, and makes a scenario observable only once its waits are long enough to be reported."""
    _until_sessions(pids, "waiting on locks", longer_than,
                    "wait_event_type = 'Lock' AND now() - query_start > make_interval(secs => %s)", timeout)


def _until_sessions(pids: list[int], what: str, longer_than: float, condition: str, timeout: float = 30) -> None:
    """Until every one of these sessions meets `condition` (SQL on pg_stat_activity, `%s` the seconds), polled in
    the database; RuntimeError (the helper fails, `sandbox up` says so) if not within longer_than + timeout s."""
    with connect("aias-sandbox/workloads", autocommit=True, admin=True) as probe:   # sees every role's sessions
        deadline = time.monotonic() + longer_than + timeout
        while time.monotonic() < deadline:
            if probe.execute(f"SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND {condition}",
                             (pids, longer_than)).fetchone()[0] >= len(pids):
                return
            time.sleep(0.05)
    raise RuntimeError(f"the sessions {pids} were not all {what} (for {longer_than} s) "
                       f"within {longer_than + timeout:.0f} s")


def slow_workload(held: list, ready: Path, timeout: float = 30) -> None:
    """Drop the index behind a dashboard query and run it in a loop: real seq scans, real pg_stat_statements.

    Ready once the statistics show the table as database-health judges a missing index (db_health.seq_scan_*
    thresholds): enough sequential scans, few enough index scans; RuntimeError if not within `timeout` s."""
    with connect("aias-sandbox/workloads", autocommit=True, admin=True) as admin:
        admin.execute("DROP INDEX IF EXISTS workflow_executions_workflow_id_idx")
    conn = connect("aias-api/dashboard", autocommit=True)
    held.append(conn)
    rule = thresholds.load_thresholds()["db_health"]
    rows = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'public.workflow_executions'::regclass"
                        ).fetchone()[0]
    workflows = max(3, int(DASHBOARD_ROWS / max(rows, 1)))
    deadline, shown = time.monotonic() + timeout, False
    while True:
        conn.execute(DASHBOARD_QUERY, (random.randrange(0, 32), workflows)).fetchall()
        if not shown:
            shown = conn.execute(SEQ_SCANS_SHOW_SQL, (rule["seq_scan_min_rows"], rule["seq_scan_min_scans"],
                                                      rule["seq_scan_max_index_pct"])).fetchone()[0]
            if shown:
                ready.touch()
            elif time.monotonic() > deadline:
                raise RuntimeError(f"workflow_executions' statistics did not show its sequential scans within "
                                   f"{timeout:.0f} s")
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
    {"leak": leak, "exhaust": exhaust, "block": block, "advisory-block": advisory_block}[kind](held)
    ready.touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
