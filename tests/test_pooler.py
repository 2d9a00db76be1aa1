"""The runbooks through a real PgBouncer (the system's pgbouncer package) in front of the session's sandbox, as
most Supabase projects reach Postgres: transaction and session mode with PgBouncer's default settings, and a
PgBouncer that drops the startup `options` (`ignore_startup_parameters = options`), the workaround people apply.

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
from aias_runbooks.sandbox import pooler as sandbox_pooler
from aias_runbooks.settings import Secret
from aias_runbooks.sources import database

from .conftest import _sandbox_env, cli, finding, free_port_base, monitor_dsn, sandbox_dsn
from .test_doctor import doctor, line


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
    assert f":{state['ports']['pooler']}/" in _sandbox_env()["AIAS_SANDBOX_DATABASE_URL"]
    status = cli("sandbox", "status")
    assert f"PgBouncer, {pooled} mode" in status.stdout


@pytest.mark.parametrize("slug", ["database-health", "database-connection-errors"])
def test_database_runbooks_are_ok_through_pgbouncer(pooled, run, slug):
    result = run(slug)
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    assert "DB_UNREACHABLE" not in result.codes
    assert set(result.codes.values()) == {"OK"}, result.codes


def test_doctor_is_ok_through_pgbouncer(pooled):
    result, lines = doctor("--env", "sandbox")
    assert result.returncode == 0, result.stdout
    assert line(lines, "read-only session").startswith("OK")
    assert "transaction_read_only=on" in line(lines, "read-only session")


@pytest.fixture(scope="module")
def ignoring_pooler(sandbox, pgbouncer) -> Iterator[str]:
    """A second PgBouncer (transaction mode) that drops the startup options: the application role's URL through it
    (aias_app has no read-only role setting, so only the runbook's own guarantees can refuse its write)."""
    with _extra_pooler("pgbouncer-ignoring", {"ignore_startup_parameters": "options"}) as (port, postgres):
        yield sandbox_pooler.via(_sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"], postgres, port)


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
    parts = urlsplit(_sandbox_env()["AIAS_SANDBOX_DATABASE_URL"])
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
        holder = sandbox_pooler.via(_sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"], postgres, port)
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
