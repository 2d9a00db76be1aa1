"""The runbooks through a real PgBouncer (the system's pgbouncer package) in front of the session's sandbox, as
most Supabase projects reach Postgres: transaction and session mode with PgBouncer's default settings, and a
PgBouncer that drops the startup `options` (`ignore_startup_parameters = options`), the workaround people apply.

The database scenarios (connection leak, pool exhaustion, blocking locks, slow queries) run through transaction mode
only, to keep CI's budget: it is the stricter mode (no session state between transactions, no prepared statements,
the next transaction on any server session), and session mode differs from a direct connection only in what
transaction mode takes away as well; the healthy runs (database runbooks, full-system-check, triage, doctor) cover
both modes.

PgBouncer missing: these tests skip on a workstation and fail in CI (the env var CI set): `.ci/run` installs it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aias_runbooks.sandbox import control
from aias_runbooks.sandbox.platform.database import pooler as sandbox_pooler
from aias_runbooks.settings import Secret
from aias_runbooks.sources import backups, database

from ..helpers import (
    PROBLEMS,
    cli,
    doctor,
    finding,
    free_port_base,
    healthy,
    leaked_longer_than,
    line,
    monitor_dsn,
    ran_to_the_end,
    sandbox_dsn,
    sandbox_env,
    wait_for,
)


@pytest.fixture(scope="module")
def pgbouncer() -> str:
    try:
        return sandbox_pooler.binary()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set: `.ci/run` installs it as root)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=["transaction", "session"])
def pooled(request, sandbox, pgbouncer) -> str:
    """The session's sandbox with PgBouncer in front (the profile's database_url through it); direct afterwards."""
    mode = request.param
    result = cli("sandbox", "up", "--pooler", mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PgBouncer ({mode} mode)" in result.stdout
    try:
        yield mode
    finally:
        back = cli("sandbox", "up", "--pooler", "none")
        assert back.returncode == 0, back.stdout + back.stderr


def test_database_url_goes_through_pgbouncer(pooled):
    state = control.read_state()
    assert f":{state['ports']['pooler']}/" in sandbox_env()["AIAS_SANDBOX_DATABASE_URL"]
    status = cli("sandbox", "status")
    assert f"PgBouncer, {pooled} mode" in status.stdout


@pytest.mark.parametrize("slug", ["database-health", "database-connection-errors"])
def test_database_runbooks_are_ok_through_pgbouncer(pooled, run, slug):
    result = run(slug)
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    assert "DB_UNREACHABLE" not in result.codes
    assert set(result.codes.values()) == {"OK"}, result.codes


GUARANTEES = ("transaction_read_only=on", "statement_timeout=5s", "lock_timeout=1s")


def test_doctor_is_ok_through_pgbouncer(pooled):
    result, lines = doctor("--env", "sandbox")
    assert result.returncode == 0, result.stdout
    guarded = line(lines, "read-only session")
    assert guarded.startswith("OK") and "every guarantee holds" in guarded, guarded
    assert all(held in guarded for held in GUARANTEES), guarded


@pytest.fixture(scope="module")
def options_dropped(sandbox, pgbouncer) -> Iterator[tuple[int, int]]:
    """A second PgBouncer (transaction mode) that drops the startup options: (its port, Postgres's)."""
    with _extra_pooler("pgbouncer-ignoring", {"ignore_startup_parameters": "options"}) as ports:
        yield ports


@pytest.fixture(scope="module")
def ignoring_pooler(options_dropped) -> str:
    """The application role's URL through the PgBouncer that drops the startup options (aias_app has no read-only
    role setting, so only the runbook's own guarantees can refuse its write)."""
    port, postgres = options_dropped
    return sandbox_pooler.via(sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"], postgres, port)


def _guarded(dsn: str, sql: str, statement_timeout_ms: int = 500, lock_timeout_ms: int = 200) -> str:
    """Run sql inside the runbook's own guarded transaction (what database.query does); the server's error."""
    engine = database.connect(Secret("database_url", dsn), "aias-runbooks/test-pooler",
                              statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as refused:
            database.begin_guarded(conn)
            try:
                conn.execute(text(sql))
            finally:
                database.end_guarded(conn)
        return str(refused.value.orig)
    finally:
        engine.dispose()


def test_options_dropped_by_the_pooler_the_write_is_still_refused(ignoring_pooler):
    message = _guarded(ignoring_pooler, "INSERT INTO public.worker_heartbeats DEFAULT VALUES")
    assert "read-only transaction" in message


def test_options_dropped_by_the_pooler_the_statement_timeout_still_holds(ignoring_pooler):
    message = _guarded(ignoring_pooler, "SELECT pg_sleep(3)")
    assert "statement timeout" in message


def test_options_dropped_by_the_pooler_the_lock_timeout_still_holds(ignoring_pooler):
    with psycopg.connect(sandbox_dsn(), autocommit=False) as holder:
        holder.execute("LOCK TABLE public.worker_heartbeats IN ACCESS EXCLUSIVE MODE")
        message = _guarded(ignoring_pooler, "SELECT count(*) FROM public.worker_heartbeats", 5000, 200)
        holder.rollback()
    assert "lock timeout" in message


def _profile_url(**change: str) -> str:
    """The profile's database_url (through PgBouncer here) with a part changed: password, database or query."""
    parts = urlsplit(sandbox_env()["AIAS_SANDBOX_DATABASE_URL"])
    netloc = parts.netloc
    if "password" in change:
        netloc = f"{parts.username}:{change['password']}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, change.get("path", parts.path), change.get("query", parts.query), ""))


@pytest.mark.parametrize(("change", "code"), [
    ({"query": "options=-c%20search_path%3Dpublic"}, "DB_STARTUP_PARAMETER_REFUSED"),
    ({"password": "not-the-password"}, "DB_LOGIN_REFUSED"),
    ({"path": "/no_such_db"}, "DB_UNKNOWN_DATABASE"),
])
def test_a_refused_connection_names_its_cause_not_unreachable(pooled, run, change, code):
    result = run("database-health", env=os.environ | {"AIAS_SANDBOX_DATABASE_URL": _profile_url(**change)})
    assert code in result.codes, result.proc.stdout + result.proc.stderr
    assert "DB_UNREACHABLE" not in result.codes
    assert "not-the-password" not in result.proc.stdout + result.proc.stderr
    if code == "DB_UNKNOWN_DATABASE":
        return   # PgBouncer holds the next client for server_login_retry (15 s) after a failed server login
    checked, lines = doctor(AIAS_SANDBOX_DATABASE_URL=_profile_url(**change))
    assert line(lines, "database").split()[2] == code + ":", checked.stdout


@contextmanager
def _extra_pooler(name: str, settings: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A second PgBouncer of the session's sandbox in transaction mode with `settings`: (its port, Postgres's)."""
    state = control.read_state()
    port = free_port_base()
    record = sandbox_pooler.start(Path(state["folder"]) / name, port, state["ports"]["postgres"], "transaction",
                                  sandbox_dsn(), control.LOGIN_ROLES, settings)
    try:
        yield port, state["ports"]["postgres"]
    finally:
        sandbox_pooler.stop(record)


def _through(port: int) -> str:
    """The profile's (monitoring) URL, through the PgBouncer on `port`."""
    return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", monitor_dsn())


@pytest.fixture(scope="module")
def full_pooler(sandbox, pgbouncer) -> Iterator[str]:
    """A PgBouncer that takes one client (max_client_conn = 1), that one held: the profile's URL through it."""
    with _extra_pooler("pgbouncer-full", {"max_client_conn": "1"}) as (port, postgres):
        holder = sandbox_pooler.via(sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"], postgres, port)
        with psycopg.connect(holder):
            yield _through(port)


def test_a_full_pooler_is_its_own_finding(full_pooler, run):
    result = run("database-health", env=os.environ | {"AIAS_SANDBOX_DATABASE_URL": full_pooler})
    assert result.codes.get("DB_POOLER_FULL") == "CRITICAL", result.proc.stdout + result.proc.stderr
    assert "DB_UNREACHABLE" not in result.codes


def test_doctor_says_it_goes_through_the_pooler_and_what_then_does_not_work(pooled):
    result, lines = doctor("--env", "sandbox")
    route = line(lines, "connection route")
    assert route.startswith("OK") and f"through a {pooled} pooler" in route, result.stdout
    assert ("advisory locks" if pooled == "transaction" else "terminating it ends that client") in route


@pytest.fixture(scope="module")
def statement_pooler(sandbox, pgbouncer) -> Iterator[str]:
    """A PgBouncer in statement mode, which refuses any transaction block: the profile's URL through it."""
    with _extra_pooler("pgbouncer-statement", {"pool_mode": "statement"}) as (port, _):
        yield _through(port)


def test_a_session_that_cannot_be_guarded_runs_no_query(statement_pooler, run):
    """No read-only transaction to be had: one finding says so, and no query runs unguarded (none fails either)."""
    result = run("database-health", env=os.environ | {"AIAS_SANDBOX_DATABASE_URL": statement_pooler})
    findings = [f for f in result.verdict["findings"] if f["code"].startswith("DB_")]
    assert [f["code"] for f in findings if f["code"] == "DB_GUARD_MISSING"] == ["DB_GUARD_MISSING"], findings
    assert not {"DB_QUERY_FAILED", "DB_UNREACHABLE"} & result.codes.keys(), result.codes
    assert "statement pooling" in finding(result, "DB_GUARD_MISSING")["evidence"]["error"]


@pytest.mark.parametrize("slug", ["full-system-check", "triage"])
def test_the_whole_system_is_ok_through_pgbouncer(pooled, quiet, run, slug):
    """What an on-call engineer runs first is all OK on the healthy sandbox behind PgBouncer, either mode."""
    result = run(slug)
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    assert not PROBLEMS & set(result.codes.values()), result.verdict["findings"]
    assert "DB_GUARD_MISSING" not in result.codes and "DB_UNREACHABLE" not in result.codes
    if slug == "triage":
        assert list(result.codes) == ["TRIAGE_ALL_CLEAR"], result.codes
    else:
        healthy(result)
        ran_to_the_end(result)


# The database scenarios through transaction mode only (the module docstring says why).
THROUGH_TRANSACTION_MODE = pytest.mark.parametrize("pooled", ["transaction"], indirect=True)


@THROUGH_TRANSACTION_MODE
def test_a_connection_leak_is_diagnosed_through_pgbouncer(pooled, run, scenario):
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
    result = run("database-connection-errors", "-p", "leak_min_idle_s=2")
    assert result.codes.get("DB_CONNECTION_LEAK") == "CRITICAL", result.codes
    leak = finding(result, "DB_CONNECTION_LEAK")
    assert leak["evidence"]["sessions"] == 8 and leak["evidence"]["applications"] == {"aias-api/export-worker": 8}


@THROUGH_TRANSACTION_MODE
def test_pool_exhaustion_is_diagnosed_through_pgbouncer(pooled, run, scenario):
    """Every server slot taken, the pooler still holds the server session it had open (as a pooler in production
    always has one): the run gets in through it and names the holder, where a direct run is refused."""
    with psycopg.connect(monitor_dsn(), prepare_threshold=None, autocommit=True) as warm:
        warm.execute("SELECT 1")    # PgBouncer keeps the server session open for server_idle_timeout (600 s)
    scenario("db-pool-exhaustion")
    result = run("database-connection-errors")
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert result.codes["DB_POOL_SATURATED"] == "CRITICAL", result.codes
    assert not {"DB_UNREACHABLE", "DB_GUARD_MISSING", "DB_QUERY_FAILED"} & result.codes.keys(), result.codes
    evidence = finding(result, "DB_POOL_SATURATED")["evidence"]
    assert evidence["usage_pct"] == 100 and next(iter(evidence["top_applications"])) == "aias-api", evidence


@THROUGH_TRANSACTION_MODE
def test_blocking_locks_are_diagnosed_through_pgbouncer(pooled, run, scenario):
    scenario("blocking-locks")
    result = run("database-connection-errors", "-p", "long_running_s=1")
    assert result.codes.get("DB_BLOCKING_LOCKS") == "CRITICAL", result.codes
    blocking = finding(result, "DB_BLOCKING_LOCKS")
    assert blocking["evidence"]["blocked_sessions"] >= 3 and len(blocking["evidence"]["root_blockers"]) == 1
    assert "aias-api/billing-job" in blocking["title"]
    assert "AccessExclusiveLock on public.workflows" in blocking["evidence"]["waits"]


@THROUGH_TRANSACTION_MODE
def test_slow_queries_are_diagnosed_through_pgbouncer(pooled, run, scenario):
    """pg_stat_statements read through the pooler (its schema found in the transaction, not the session)."""
    scenario("slow-queries")
    errors = run("database-connection-errors")
    assert errors.codes.get("DB_SLOW_QUERY") in PROBLEMS, errors.codes
    assert "workflow_executions" in finding(errors, "DB_SLOW_QUERY")["evidence"]["query"]
    health = run("database-health")
    assert health.codes.get("DB_SEQ_SCAN_HOT_TABLE") == "WARNING", health.codes
    assert "public.workflow_executions" in finding(health, "DB_SEQ_SCAN_HOT_TABLE")["evidence"]["tables"]


@pytest.fixture(scope="module")
def one_server_session(sandbox, pgbouncer) -> Iterator[str]:
    """A transaction-mode PgBouncer with one server session per pool (default_pool_size = 1), so each client of
    the monitoring role is served by the session the previous one left: the profile's URL through it."""
    with _extra_pooler("pgbouncer-one-session", {"default_pool_size": "1"}) as (port, _):
        yield _through(port)


def _session_settings(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("statement_timeout", "TimeZone", "DateStyle", "extra_float_digits")}


def test_backup_checksums_leave_no_setting_behind_on_a_transaction_pooler(one_server_session):
    """The checksums spell values canonically and may run 10 minutes: settings of their own transaction, never
    of the server session, which a transaction pooler hands to the next client (another application's)."""
    before = _session_settings(one_server_session)
    checked = backups.read_checksums(Secret("database_url", one_server_session), ["supabase_migrations"],
                                     "aias-runbooks/test")
    assert not checked.empty
    assert _session_settings(one_server_session) == before


def test_doctor_says_every_guarantee_holds_when_the_pooler_drops_the_options(options_dropped):
    """The monitoring role's URL through a PgBouncer that drops the startup options: the guarantees are set in each
    transaction, so doctor reads all three back there."""
    result, lines = doctor(AIAS_SANDBOX_DATABASE_URL=_through(options_dropped[0]))
    guarded = line(lines, "read-only session")
    assert guarded.startswith("OK") and "every guarantee holds" in guarded, result.stdout
    assert all(held in guarded for held in GUARANTEES), guarded


def test_doctor_names_the_guarantee_it_cannot_have_and_how_to_get_it(statement_pooler):
    """A statement-mode pooler refuses the read-only transaction: the database answers (not unreachable), and the
    read-only line says no guarantee holds, why, and which connection string gives them."""
    result, lines = doctor(AIAS_SANDBOX_DATABASE_URL=statement_pooler)
    assert result.returncode != 0, result.stdout
    assert line(lines, "database").startswith("OK"), result.stdout
    guarded = line(lines, "read-only session")
    assert guarded.startswith("CRITICAL") and "no guarantee holds" in guarded, result.stdout
    assert "statement pooling" in guarded and "Use the direct, session (5432) or transaction (6543)" in guarded
