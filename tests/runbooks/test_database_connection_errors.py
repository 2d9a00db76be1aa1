"""database-connection-errors, run through the runner against real faults in the sandbox."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from aias_runbooks.sandbox.platform.database import postgres

from ..helpers import (
    PROBLEMS,
    admin_session,
    app_dsn,
    client_backends,
    free_port_base,
    leaked_longer_than,
    monitor_connections,
    no_problem,
    sandbox_dsn,
    wait_for,
)

BOUND_S = 180   # a refused run is bounded: well under the 300 s cell timeout, with room for a loaded machine
OVERSIZED = "aias-api/oversized-pool"
# What a run refused for lack of slots says to do, before the query (the one it runs itself, on one line).
REFUSED_QUERY_STEP = ("Name who holds the slots from a reserved slot (on Supabase, also Reports > Database): connect "
                      "as a superuser (the slots superuser_reserved_connections keeps), and run: ")


def _sessions(app: str) -> int:
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0]


def test_healthy_sandbox_has_no_database_problem(run):
    no_problem(run("database-connection-errors"))


def test_connection_leak_is_found_and_dry_run_changes_nothing(run, scenario):
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
    result = run("database-connection-errors", "-p", "leak_min_idle_s=2")
    assert result.codes["DB_CONNECTION_LEAK"] == "CRITICAL", result.codes
    assert result.proc.returncode == 2
    leak = next(f for f in result.verdict["findings"] if f["code"] == "DB_CONNECTION_LEAK")
    assert leak["evidence"]["sessions"] == 8 and leak["evidence"]["applications"] == {"aias-api/export-worker": 8}
    assert _sessions("aias-api/export-worker") == 8, "a dry run terminates nothing"
    assert not (result.output / "audit.jsonl").exists()


def test_apply_terminates_only_the_leaked_sessions_and_audits(run, scenario):
    # the application's role, like the leaked sessions: only the criteria, not a privilege, spare them
    with psycopg.connect(app_dsn(), application_name="bystander-idle", autocommit=True), \
            psycopg.connect(app_dsn(), application_name="bystander-other-app") as other:
        other.execute("SELECT 1")            # idle in transaction too, but not the application named
        scenario("db-connection-leak")
        wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
        result = run("database-connection-errors", "-p", "leak_min_idle_s=2", "-p", "apply=true",
                     "-p", "only_application=aias-api/export-worker", "--operator", "alice", "--incident", "INC-7")
        assert _sessions("bystander-idle") == 1 and _sessions("bystander-other-app") == 1
    assert result.proc.returncode == 2, "the verdict is what was diagnosed before the action"
    assert _sessions("aias-api/export-worker") == 0
    records = [json.loads(line) for line in (result.output / "audit.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["started", "finished"]   # one apply: the attempt, then its outcome
    record = records[1]
    assert record["operator"] == "alice" and record["incident"] == "INC-7" and record["terminated"] == 8
    assert {t["application"] for t in record["targets"]} == {"aias-api/export-worker"}
    assert record["run_id"] == result.verdict["run_id"]


def test_apply_without_operator_is_refused_before_running(run):
    result = run("database-connection-errors", "-p", "apply=true")
    assert result.proc.returncode == 3
    assert "needs an operator" in result.proc.stderr and not result.output.exists()


def test_pool_exhaustion_is_reported_not_crashed(run, scenario):
    scenario("db-pool-exhaustion")
    result = run("database-connection-errors")
    assert result.proc.returncode == 2
    assert result.codes == {"DB_POOL_SATURATED": "CRITICAL"}, result.codes
    finding = result.verdict["findings"][0]
    assert "too many clients" in finding["evidence"]["server_message"]
    assert (result.folder / "report.html").is_file()


def test_blocking_chain_names_the_root_blocker_and_the_ddl_wait(run, scenario):
    scenario("blocking-locks")
    result = run("database-connection-errors", "-p", "long_running_s=1")
    assert result.codes["DB_BLOCKING_LOCKS"] == "CRITICAL" and result.codes["DB_LONG_RUNNING_QUERY"] == "WARNING"
    blocking = next(f for f in result.verdict["findings"] if f["code"] == "DB_BLOCKING_LOCKS")
    # the UPDATE, the migration and the read queued behind it; the app's own reads may be stuck there too
    assert blocking["evidence"]["blocked_sessions"] >= 3 and len(blocking["evidence"]["root_blockers"]) == 1
    assert "aias-api/billing-job" in blocking["title"]
    assert "AccessExclusiveLock on public.workflows" in blocking["evidence"]["waits"], "DDL waits count"


def test_slow_queries_found_from_pg_stat_statements_and_seq_scans(run, scenario):
    scenario("slow-queries")
    errors = run("database-connection-errors")
    assert errors.codes.get("DB_SLOW_QUERY") in PROBLEMS, errors.codes
    slow = next(f for f in errors.verdict["findings"] if f["code"] == "DB_SLOW_QUERY")
    assert "workflow_executions" in slow["evidence"]["query"]
    health = run("database-health")
    assert health.codes.get("DB_SEQ_SCAN_HOT_TABLE") == "WARNING", health.codes
    hot = next(f for f in health.verdict["findings"] if f["code"] == "DB_SEQ_SCAN_HOT_TABLE")
    assert "public.workflow_executions" in hot["evidence"]["tables"]


def test_without_pg_stat_statements_slow_queries_are_unknown_and_the_rest_runs(run, sandbox):
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
        try:
            result = run("database-connection-errors")
        finally:
            conn.execute("CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions")
    assert result.codes["DB_SLOW_QUERY_UNKNOWN"] == "UNKNOWN"
    assert {"DB_POOL_OK", "DB_NO_LEAKS", "DB_LATENCY_OK"} <= result.codes.keys()
    assert result.proc.returncode == 3


def test_a_diagnosis_run_opens_exactly_one_connection(run, sandbox):
    assert monitor_connections(sandbox, run("database-connection-errors")) == 1


def test_pool_at_80_percent_of_usable_slots_is_a_warning(run, sandbox):
    """The measured path: 39 of 47 usable slots in use is past 80 % but short of 95 %.

    38 client backends (this probe included) plus the run's own aias_monitor session; the application's
    oversized pool connects as aias_app and, like the monitor, only gets the 47 non-reserved slots.
    """
    with client_backends(38):
        result = run("database-connection-errors")
    assert result.codes["DB_POOL_SATURATED"] == "WARNING", result.codes
    pool = next(f for f in result.verdict["findings"] if f["code"] == "DB_POOL_SATURATED")
    assert pool["evidence"]["usable"] == 47 and 80 <= pool["evidence"]["usage_pct"] < 95
    assert "aias-api/oversized-pool" in pool["evidence"]["top_applications"]
    assert result.proc.returncode == 1


@contextmanager
def _usable_slots_held(dsn: str, application: str = OVERSIZED) -> Iterator[list[psycopg.Connection]]:
    """Sessions of `dsn` (not a superuser) opened until the server refuses one for lack of slots, and any slot
    that frees taken again until the end (the sandbox's own clients come and go): only reserved slots are left."""
    held: list[psycopg.Connection] = []
    refusals: list[str] = []
    stop = threading.Event()

    def fill() -> None:
        while not stop.is_set():
            try:
                held.append(psycopg.connect(dsn, application_name=application, autocommit=True, connect_timeout=5))
            except psycopg.OperationalError as exc:
                refusals.append(str(exc))
                stop.wait(0.02)
    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    try:
        wait_for(lambda: refusals, 60, "the server to refuse a connection")
        assert "remaining connection slots are reserved" in refusals[0], refusals[0]
        yield held
    finally:
        stop.set()
        thread.join(timeout=30)
        for conn in held:
            conn.close()


def test_refused_for_slots_says_exactly_what_to_run_from_a_reserved_slot(run, sandbox):
    """PostgreSQL 15 (the sandbox): the application holds every slot but the superusers' reserved ones, so the
    monitoring role is refused. The run ends at once with what to run from a reserved slot, and that query, run
    there as a superuser, names the holder."""
    with _usable_slots_held(app_dsn()):
        started = time.monotonic()
        result = run("database-connection-errors")
        elapsed = time.monotonic() - started
        finding = next(f for f in result.verdict["findings"] if f["code"] == "DB_POOL_SATURATED")
        query = finding["evidence"]["reserved_slot_query"]
        with admin_session() as admin:                  # a superuser: it gets one of the reserved slots
            holders = admin.execute(query).fetchall()
    assert result.proc.returncode == 2 and elapsed < BOUND_S, (elapsed, result.proc.stdout, result.proc.stderr)
    assert result.codes == {"DB_POOL_SATURATED": "CRITICAL"}, result.codes
    assert "reserved for non-replication superuser connections" in finding["evidence"]["server_message"]
    assert finding["title"] == ("The database refuses new connections: every connection slot is taken but those "
                                "reserved for superusers.")
    assert finding["evidence"]["server_version"] == "15 or older" and finding["evidence"]["role"] == "aias_monitor"
    query_step, grant_step, *_ = finding["next_steps"]
    assert query_step == REFUSED_QUERY_STEP + query
    assert query.startswith("SELECT ") and query.endswith(";") and "\n" not in query
    assert grant_step == ("This server is PostgreSQL 15 or older (it keeps slots for superusers only); from "
                          "PostgreSQL 16, reserved_connections with GRANT pg_use_reserved_connections TO "
                          "aias_monitor lets this runbook connect through a reserved slot and name the holders "
                          "itself.")
    state, role, application, client, connections, _ = holders[0]
    assert (application, role, client, state) == (OVERSIZED, "aias_app", "127.0.0.1", "idle"), holders[:3]
    assert connections > 47 // 2, holders[:3]
    assert (result.folder / "report.html").is_file()


def _pg16_binaries() -> postgres.Binaries | None:
    """PostgreSQL 16+ server binaries on this machine (the pgserver wheel's, as `make demo` installs it), if any."""
    spec = importlib.util.find_spec("pgserver")
    bindir = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
    if bindir is None or not (bindir / "postgres").is_file():
        return None
    binaries = postgres._describe(bindir, "pgserver wheel")
    return binaries if int(binaries.version.split(".")[0]) >= 16 else None


@pytest.fixture(scope="module")
def pg16(sandbox):
    """A PostgreSQL 16 server of the tests' own with reserved_connections = 2 (and 3 for superusers) of 12 slots:
    7 usable. aias_monitor may use the reserved slots (pg_use_reserved_connections), aias_monitor_ungranted may
    not; the application's role fills the usable ones. Yields {role: dsn}."""
    binaries = _pg16_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL 16+ server binaries here (pgserver wheel): the 16+ path needs one")
    folder = Path(tempfile.mkdtemp(prefix="aias-test-pg16-"))
    folder.chmod(0o755)
    password, port = secrets.token_urlsafe(12), free_port_base()
    postgres.init(binaries, folder / "data", password)
    postgres.configure(binaries, folder / "data", port, max_connections=12)
    with open(folder / "data" / "postgresql.auto.conf", "a") as conf:
        conf.write("reserved_connections = 2\n")
    postgres.start(binaries, folder / "data", folder / "postgres.log")
    dsn = {role: f"postgresql://{role}:{password}@127.0.0.1:{port}/postgres"
           for role in (postgres.SUPERUSER, "aias_monitor", "aias_monitor_ungranted", "aias_app")}
    try:
        with psycopg.connect(dsn[postgres.SUPERUSER], autocommit=True) as admin:
            for role in ("aias_monitor", "aias_monitor_ungranted", "aias_app"):
                admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            admin.execute("GRANT pg_monitor TO aias_monitor, aias_monitor_ungranted")
            admin.execute("GRANT pg_use_reserved_connections TO aias_monitor")
        yield dsn
    finally:
        postgres.stop(binaries.bindir, folder / "data")
        shutil.rmtree(folder, ignore_errors=True)


def test_pg16_a_role_with_reserved_slots_gets_in_and_names_the_holders(run, pg16):
    """PostgreSQL 16+: the monitoring role has pg_use_reserved_connections, so when the application holds every
    usable slot the run connects through a reserved one and names the top holder itself."""
    with _usable_slots_held(pg16["aias_app"]) as held:
        result = run("database-connection-errors",
                     env={**os.environ, "AIAS_SANDBOX_DATABASE_URL": pg16["aias_monitor"]})
        usable = len(held)
    assert usable == 12 - 3 - 2
    pool = next(f for f in result.verdict["findings"] if f["code"] == "DB_POOL_SATURATED")
    assert pool["severity"] == "CRITICAL" and result.proc.returncode == 2, result.codes
    assert pool["title"] == (f"Every usable connection slot is taken ({usable} of {usable}; this runbook's own "
                             "connection not counted): it got in through a slot reserved for "
                             f"pg_use_reserved_connections. Top holder: {OVERSIZED} (user aias_app from 127.0.0.1, "
                             f"idle) with {usable} connection(s).")
    assert pool["evidence"]["holders"][0] == {"application": OVERSIZED, "role": "aias_app", "client": "127.0.0.1",
                                              "state": "idle", "connections": usable}


def test_pg16_a_role_without_reserved_slots_is_told_to_grant_them(run, pg16):
    """PostgreSQL 16+, the monitoring role without pg_use_reserved_connections: refused, the finding says the
    server is 16+, what to grant, and what to run from a reserved slot (which names the holder)."""
    with _usable_slots_held(pg16["aias_app"]):
        result = run("database-connection-errors",
                     env={**os.environ, "AIAS_SANDBOX_DATABASE_URL": pg16["aias_monitor_ungranted"]})
        finding = next(f for f in result.verdict["findings"] if f["code"] == "DB_POOL_SATURATED")
        with psycopg.connect(pg16["aias_monitor"], autocommit=True) as reserved:    # one of the reserved slots
            holders = reserved.execute(finding["evidence"]["reserved_slot_query"]).fetchall()
    assert result.codes == {"DB_POOL_SATURATED": "CRITICAL"} and result.proc.returncode == 2, result.codes
    assert '"pg_use_reserved_connections" role' in finding["evidence"]["server_message"]
    assert finding["evidence"]["server_version"] == "16 or later"
    query_step, grant_step, *_ = finding["next_steps"]
    assert query_step.startswith("Name who holds the slots from a reserved slot (on Supabase, also Reports > "
                                 "Database): connect as a superuser or a role granted pg_use_reserved_connections")
    assert grant_step == ("This server is PostgreSQL 16 or later and keeps slots for pg_use_reserved_connections: "
                          "as a superuser, GRANT pg_use_reserved_connections TO aias_monitor_ungranted; this runbook "
                          "then connects through one of them and names the holders itself.")
    assert holders[0][:4] == ("idle", "aias_app", OVERSIZED, "127.0.0.1"), holders


def test_a_ranking_keeps_its_order_in_a_real_runs_verdict(run, sandbox):
    """top_applications is ranked by connections: the application holding most comes first in verdict.json,
    although its name sorts last (a saved notebook sorts keys; the verdict must not)."""

    held = [psycopg.connect(app_dsn(), application_name="zz-busiest-app", autocommit=True) for _ in range(8)]
    try:
        result = run("database-connection-errors", "-p", "latency_samples=10", "-p", "statements_window_s=1")
    finally:
        for conn in held:
            conn.close()
    pool = next(f for f in result.verdict["findings"] if f["code"] in ("DB_POOL_OK", "DB_POOL_SATURATED"))
    ranking = pool["evidence"]["top_applications"]
    assert list(ranking)[0] == "zz-busiest-app" and ranking["zz-busiest-app"] == 8, ranking
    assert list(ranking.values()) == sorted(ranking.values(), reverse=True)
