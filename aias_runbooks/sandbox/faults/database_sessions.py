"""Faults held by database sessions, in a process of their own that keeps them until it is stopped (stopping it
undoes the fault: its connections close with it):
- `leak` (db-connection-leak): 8 sessions of the application idle in transaction, holding snapshots;
- `exhaust` (db-pool-exhaustion): connections opened until the server refuses, reserved slots included;
- `block` (blocking-locks): an open transaction holds a row; an UPDATE, a migration's DDL and a read queue behind it;
- `advisory-block` (advisory-lock-blocker): an idle session holds pg_advisory_lock(42), another waits for it;
- `slow-workload` (slow-queries): the index behind a dashboard query dropped, the query run in a loop; leaving it
  recreates the index and starts the statistics over (they hold its evidence).

Run as `python -m aias_runbooks.sandbox.faults.database_sessions KIND READY_FILE` with AIAS_SANDBOX_APP_DATABASE_URL
and AIAS_SANDBOX_ADMIN_DATABASE_URL set; READY_FILE is touched once the fault is past the thresholds the runbooks
apply. The application's sessions connect as aias_app, so a runbook's guarded action (pg_signal_backend, which
cannot signal a superuser) can end them; only what needs it runs as the superuser: filling the reserved slots, a
migration's DDL (run by the owner), dropping an index.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ... import thresholds
from .. import processes
from ..platform.database import statements, stats
from ..platform.sessions import connect
from .base import Context

LEAKED_SESSIONS = 8
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


def slow_workload(held: list, ready: Path, timeout: float = 55) -> None:
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


INDEX_SQL = "CREATE INDEX IF NOT EXISTS workflow_executions_workflow_id_idx ON public.workflow_executions (workflow_id)"
HOLDERS = {"leak": leak, "exhaust": exhaust, "block": block, "advisory-block": advisory_block}


@dataclass(frozen=True)
class HeldSessions:
    """The fault `kind` held by its own process (components.fault in state.json) while the scenario lasts."""

    kind: str

    def make(self, ctx: Context) -> None:
        ctx.state["components"]["fault"] = processes.start_ready(
            ctx.folder, self.kind, "aias_runbooks.sandbox.faults.database_sessions", self.kind,
            env=processes.component_env(ctx.folder)) | {"kind": self.kind}
        ctx.save()

    def reset(self, ctx: Context) -> None:
        ctx.stop("fault")
        if self.kind == "slow-workload":   # the index back; the statistics start over without its evidence
            with ctx.admin() as conn:
                conn.execute(INDEX_SQL)
                stats.warm(conn, ctx.scale)
                conn.execute(stats.FLUSH_STATS_SQL)
                conn.execute(stats.STATS_RESET_SQL)
                statements.refill(ctx.state, conn)


def main() -> None:
    kind, ready = sys.argv[1], Path(sys.argv[2])
    held: list = []
    if kind == "slow-workload":
        slow_workload(held, ready)
        return
    HOLDERS[kind](held)
    ready.touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
