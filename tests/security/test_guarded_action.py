"""The guarded action `terminate leaked sessions`, called as a notebook calls it, against the sandbox's Postgres.

Each test makes its own non-superuser signalling role (pg_signal_backend, pg_read_all_stats) and points the
runbook at it, and its own leaked sessions (a unique application_name, BEGIN; SELECT 1, left idle in
transaction): so what is terminated, skipped or refused does not depend on how the sandbox's roles are set up.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from aias_runbooks import runbook
from aias_runbooks.actions import terminate
from aias_runbooks.sources import database

from ..helpers import sandbox_dsn

MIN_IDLE_S = 1


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.05)


@dataclass
class Lab:
    admin: str                      # the sandbox's superuser DSN
    app_url: str                    # a non-superuser application role
    monitor_url: str                # the non-superuser signalling role the runbook connects as
    app: str                        # the application_name of every session this test leaks
    audit: Path
    sessions: list[psycopg.Connection] = field(default_factory=list)

    def leak(self, superuser: bool = False) -> psycopg.Connection:
        """A session left idle in transaction (BEGIN; SELECT 1), as the app role or as the superuser."""
        conn = psycopg.connect(self.admin if superuser else self.app_url, application_name=self.app)
        conn.execute("SELECT 1")
        self.sessions.append(conn)
        return conn

    def activity(self, sql_text: str, *params) -> list[tuple]:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            return conn.execute(sql_text, params).fetchall()

    def wait_until_leaked(self) -> None:
        """Until every open session of this test is idle in transaction for longer than the criterion."""
        expected = {c.info.backend_pid for c in self.sessions if not c.closed}

        def leaked() -> bool:
            rows = self.activity("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                                 "AND state = 'idle in transaction' "
                                 "AND now() - state_change > make_interval(secs => %s)", self.app, MIN_IDLE_S)
            return {pid for (pid,) in rows} >= expected
        wait_for(leaked, f"{len(expected)} sessions idle in transaction for more than {MIN_IDLE_S}s")

    def alive(self, *conns: psycopg.Connection) -> set[int]:
        pids = [c.info.backend_pid for c in conns]
        return {pid for (pid,) in self.activity("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", pids)}

    def wait_gone(self, *conns: psycopg.Connection) -> None:
        wait_for(lambda: not self.alive(*conns), "the terminated sessions to exit")

    def records(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@pytest.fixture
def lab(sandbox, tmp_path, monkeypatch):
    admin = sandbox_dsn()           # read before the runbook's DSN is pointed at the test's own role
    tag = secrets.token_hex(4)
    monitor, app = f"aias_test_monitor_{tag}", f"aias_test_app_{tag}"
    passwords = {monitor: secrets.token_hex(16), app: secrets.token_hex(16)}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_signal_backend, pg_read_all_stats")
                     .format(sql.Identifier(monitor), sql.Literal(passwords[monitor])))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(app),
                                                                         sql.Literal(passwords[app])))

    def url(role: str) -> str:
        return make_url(admin).set(username=role, password=passwords[role]).render_as_string(hide_password=False)

    output = tmp_path / "output"
    monkeypatch.setenv("AIAS_SANDBOX_DATABASE_URL", url(monitor))
    monkeypatch.setenv("AIAS_OUTPUT_DIR", str(output))
    for var in ("AIAS_RUN_ID", "AIAS_INCIDENT"):
        monkeypatch.delenv(var, raising=False)
    lab = Lab(admin, url(app), url(monitor), f"leaky-test/{tag}", output / "audit.jsonl")
    try:
        yield lab
    finally:
        for conn in lab.sessions:
            conn.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            def sessions() -> int:
                return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE usename IN (%s, %s) OR application_name = %s",
                                    (monitor, app, lab.app)).fetchone()[0]
            wait_for(lambda: sessions() == 0, "the test's sessions to end")
            for role in (monitor, app):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def start_plan(lab: Lab):
    rb = runbook.start("database-connection-errors", "sandbox")
    targets = terminate.plan(rb, MIN_IDLE_S, lab.app)
    assert "error" not in targets.attrs, targets.attrs
    return rb, targets


def test_one_superuser_target_fails_alone_and_everything_is_audited(lab):
    app_sessions = [lab.leak(), lab.leak()]
    superuser = lab.leak(superuser=True)
    app_sessions += [lab.leak(), lab.leak()]
    lab.wait_until_leaked()
    rb, targets = start_plan(lab)
    pids = [c.info.backend_pid for c in app_sessions[:2] + [superuser] + app_sessions[2:]]
    assert list(targets["pid"]) == pids, "the superuser session is in the middle of the plan"

    result = terminate.run(rb, targets, apply=True, operator="alice")        # does not raise

    with psycopg.connect(lab.monitor_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        conn.execute("SELECT pg_terminate_backend(%s)", (superuser.info.backend_pid,))
    server_message = refused.value.diag.message_primary
    outcome = dict(zip(result["pid"], result["action"], strict=True))
    assert outcome[superuser.info.backend_pid].startswith(f"failed: {server_message}")
    assert all(outcome[c.info.backend_pid] == "terminated" for c in app_sessions), outcome
    assert list(result["terminated"]) == [True, True, False, True, True]
    lab.wait_gone(*app_sessions)
    assert lab.alive(superuser) == {superuser.info.backend_pid}

    started, finished = lab.records()
    assert (started["phase"], finished["phase"]) == ("started", "finished")
    assert started["attempt"] == finished["attempt"]
    for record in (started, finished):
        assert record["operator"] == "alice" and record["run_id"] == rb.run_id
        assert record["criteria"] == {"min_idle_s": MIN_IDLE_S, "application": lab.app}
        assert [t["pid"] for t in record["targets"]] == pids
        assert {t["application"] for t in record["targets"]} == {lab.app}
    assert started["terminated"] == 0
    assert {t["action"] for t in started["targets"]} == {terminate.PLANNED}
    assert finished["terminated"] == 4 and finished["failed"] == 1
    assert {t["pid"]: t["action"] for t in finished["targets"]} == outcome


def test_a_session_that_moved_on_since_the_plan_is_skipped(lab):
    unchanged_1, new_transaction, ran_statement, unchanged_2 = (lab.leak() for _ in range(4))
    lab.wait_until_leaked()
    rb, targets = start_plan(lab)
    planned = targets.set_index("pid")

    new_transaction.commit()
    new_transaction.execute("SELECT 1")              # BEGIN; SELECT 1 again: a new transaction, idle in it
    ran_statement.execute("SELECT 2")                # same transaction, but it ran something since the plan
    lab.wait_until_leaked()                          # both idle past the criterion again: only identity tells
    pid = new_transaction.info.backend_pid
    ((backend_start, xact_start, state),) = lab.activity(
        "SELECT backend_start, xact_start, state FROM pg_stat_activity WHERE pid = %s", pid)
    assert backend_start == planned.loc[pid, "backend_start"] and state == "idle in transaction"
    assert xact_start != planned.loc[pid, "xact_start"], "the premise: same session, new transaction"

    result = terminate.run(rb, targets, apply=True, operator="alice")

    outcome = dict(zip(result["pid"], result["action"], strict=True))
    assert outcome[unchanged_1.info.backend_pid] == outcome[unchanged_2.info.backend_pid] == "terminated"
    assert outcome[pid] == "skipped: changed since the plan: it ended the planned transaction and began a new one"
    assert outcome[ran_statement.info.backend_pid] == "skipped: changed since the plan: it ran a statement"
    lab.wait_gone(unchanged_1, unchanged_2)
    assert new_transaction.execute("SELECT 3").fetchone() == (3,)     # still connected, transaction intact
    assert ran_statement.execute("SELECT 4").fetchone() == (4,)
    finished = lab.records()[-1]
    assert finished["phase"] == "finished" and finished["terminated"] == 2 and finished["skipped"] == 2


def test_the_started_record_is_written_before_the_first_signal(lab, monkeypatch):
    sessions = [lab.leak() for _ in range(3)]
    lab.wait_until_leaked()
    rb, targets = start_plan(lab)
    seen = []
    real_query = database.query

    def spy(conn, name, **params):
        if name == "terminate_backends":
            seen.append((params["pid"], [r["phase"] for r in lab.records()], lab.alive(*sessions)))
        return real_query(conn, name, **params)
    monkeypatch.setattr(terminate.database, "query", spy)

    terminate.run(rb, targets, apply=True, operator="alice")

    pids = [c.info.backend_pid for c in sessions]
    first_pid, phases, alive = seen[0]
    assert first_pid == pids[0] and phases == ["started"] and alive == set(pids), \
        "before the first signal: the started record, and every target still alive"
    assert [s[0] for s in seen] == pids, "one statement per target"
    started = lab.records()[0]
    assert [t["pid"] for t in started["targets"]] == pids and started["operator"] == "alice"


def test_an_interrupted_apply_still_leaves_the_started_and_the_partial_outcome(lab, monkeypatch):
    sessions = [lab.leak() for _ in range(3)]
    lab.wait_until_leaked()
    rb, targets = start_plan(lab)
    real_query = database.query
    calls = []

    def interrupted_at_the_second(conn, name, **params):
        if name == "terminate_backends":
            calls.append(params["pid"])
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_query(conn, name, **params)
    monkeypatch.setattr(terminate.database, "query", interrupted_at_the_second)

    with pytest.raises(KeyboardInterrupt):
        terminate.run(rb, targets, apply=True, operator="alice")

    started, finished = lab.records()
    assert started["phase"] == "started" and len(started["targets"]) == 3
    assert [t["action"] for t in finished["targets"]] == [
        "terminated", "interrupted: outcome unknown", "not attempted: interrupted"]
    lab.wait_gone(sessions[0])
    assert lab.alive(*sessions[1:]) == {c.info.backend_pid for c in sessions[1:]}


def test_a_dry_run_terminates_nothing_and_writes_no_audit(lab):
    sessions = [lab.leak() for _ in range(2)]
    lab.wait_until_leaked()
    rb, targets = start_plan(lab)

    result = terminate.run(rb, targets, apply=False, operator="")

    assert set(result["action"]) == {"dry run: would terminate"} and len(result) == 2
    assert lab.alive(*sessions) == {c.info.backend_pid for c in sessions}
    assert not lab.audit.exists()
