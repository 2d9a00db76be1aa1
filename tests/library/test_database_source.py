"""The read-only database source against the sandbox's real Postgres, through the monitoring role aias_monitor."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from aias_runbooks import paths
from aias_runbooks.settings import Secret, load_environment
from aias_runbooks.sources import database

from ..helpers import app_dsn, sandbox_dsn, sandbox_password

QUERIES = sorted(p for p in paths.sql_dir().glob("*.sql") if "-- ACTION:" not in p.read_text())
# A sensible value for every bind parameter a diagnosis query takes (the smoke walk fails on one missing here).
SAMPLE_PARAMS = {"limit": 5, "min_idle_s": 0, "application": None, "min_seconds": 0, "min_calls": 1, "before": "[]",
                 "min_blocked_s": 5, "min_holder_idle_s": 2, "window_minutes": 60, "ids": [],
                 "user_ids": ["not-a-uuid'--"],
                 "schemas": ["public"], "stuck_minutes": 5, "min_share": 1.0,
                 "min_rows": 10000, "min_scans": 50, "max_index_pct": 50, "lag_factor": 2,
                 "tables": ["public.error_logs", "public.no_such_table"], "baseline_days": 30,
                 "known_origins": ["127.0.0.0/8", "::1/128"], "key_ids": ["not-a-uuid'--"],
                 "user_id": "00000000-0000-4000-8000-000000000000", "email": "o'brien\"<b>@example.test",
                 "tenant_ids": ["00000000-0000-4000-8000-000000000000"], "since": "2026-01-01T00:00:00Z",
                 "views": ["aias_runbooks.auth_users", "aias_runbooks.no_such_view'--"]}


@pytest.fixture
def engine(sandbox):
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/test/ro")
    yield engine
    engine.dispose()


def test_session_is_read_only_bounded_and_named(engine):
    info = database.query(engine, "connection_info")
    assert info.attrs["description"].startswith("This session as the server sees it")
    row = info.iloc[0]
    assert row["read_only"] == "on"
    assert row["statement_timeout"] == "5s" and row["lock_timeout"] == "1s"
    assert row["application_name"] == "aias-runbooks/test/ro"


def test_read_only_engine_refuses_insert(engine):
    count = "SELECT count(*) FROM error_logs"
    with engine.connect() as conn:
        before = conn.execute(text(count)).scalar()
    with pytest.raises(DBAPIError, match="read-only transaction"), engine.begin() as conn:
        conn.execute(text("INSERT INTO error_logs (level, source, message) VALUES ('error', 'test', 'x')"))
    with engine.connect() as conn:
        assert conn.execute(text(count)).scalar() == before


def test_engine_holds_at_most_one_connection(engine):
    for _ in range(3):
        database.query(engine, "connection_info")
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                         {"a": "aias-runbooks/test/ro"}).scalar()
    assert n == 1


def test_a_connection_cut_inside_the_bound_fails_the_block_even_when_the_error_was_swallowed(engine):
    """The closing ROLLBACK of a guarded query swallows its error (end_guarded): a server frozen right then must
    still fail the query as NoAnswer, the connection invalidated, not leave it to fail the next query obscurely."""
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        os.kill(pid, signal.SIGSTOP)
        try:
            with (pytest.raises(database.NoAnswer, match="no answer from the database within 1 s"),
                  database.answer_within(conn, 1)):
                database.end_guarded(conn)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert conn.invalidated


def test_secret_never_prints_itself(sandbox):
    secret = load_environment("sandbox").secret("database_url")
    password = sandbox_password()
    assert password not in repr(secret) and password not in str(secret) and password not in f"{secret}"
    assert repr(secret) == "Secret(AIAS_SANDBOX_DATABASE_URL=***)"


def test_a_notebook_can_reach_only_the_secrets_its_profile_names(sandbox):
    """sandbox.env also holds the superuser's and the application's URLs: a runbook's profile must not carry them."""
    profile = load_environment("sandbox")
    held = " ".join(vars(profile)["_values"].values())
    assert sandbox_dsn() not in held and app_dsn() not in held
    assert set(vars(profile)["_values"]) <= set(profile.secret_vars.values())
    assert profile.secret("database_url").reveal() != sandbox_dsn()


def test_the_runbooks_role_is_not_a_superuser_and_cannot_write_even_when_it_turns_read_only_off(engine):
    """Read-only is the role's privileges, not only a session setting the session itself could undo."""
    count = "SELECT count(*) FROM error_logs"
    with engine.connect() as conn:
        role = conn.execute(text("SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles "
                                 "WHERE rolname = current_user")).one()
        assert tuple(role) == ("aias_monitor", False, False, False)
        before = conn.execute(text(count)).scalar()
        assert before > 0, "the monitor counts rows of a table under RLS (its read-only policy)"
        conn.exec_driver_sql("SET default_transaction_read_only = off")
        assert conn.execute(text("SHOW transaction_read_only")).scalar() == "off"
        for statement in ["INSERT INTO error_logs (level, source, message) VALUES ('error', 'test', 'x')",
                          "UPDATE workflows SET name = name", "DELETE FROM error_logs",
                          "TRUNCATE api_requests"]:
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.exec_driver_sql(statement)
        writable = conn.execute(text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')")).scalar()
        assert writable == 0, "no table anywhere the monitor could change"
        assert conn.execute(text(count)).scalar() == before


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_every_diagnosis_query_is_described_and_runs_as_the_monitoring_role(engine, path):
    """Smoke walk (as ruby-pg-extras' smoke_spec): each named query, with sample parameters, as aias_monitor."""
    sql = path.read_text()
    assert sql.splitlines()[0].startswith("-- "), "first line: a one-line description comment"
    names = set(text(sql).compile().params)
    assert names <= SAMPLE_PARAMS.keys(), f"give SAMPLE_PARAMS a value for {names - SAMPLE_PARAMS.keys()}"
    if path.stem == "slow_queries" and database.query(engine, "pg_stat_statements_status").iloc[0]["version"] is None:
        pytest.skip("pg_stat_statements is not installed on this server")
    frame = database.query(engine, path.stem, **{k: SAMPLE_PARAMS[k] for k in names})
    assert list(frame.columns)


def test_every_diagnosis_query_runs_whatever_the_search_path(engine):
    """No query leans on a search_path (a role's setting, a pooler that drops or keeps one): each names every table
    and view with its schema, pg_stat_statements with the schema the extension lives in. Each runs in the runbook's
    own guarded transaction with the search path emptied there."""
    failed = {}
    with engine.connect() as conn:
        for path in QUERIES:
            names = set(text(path.read_text()).compile().params)
            database.begin_guarded(conn)
            try:
                conn.exec_driver_sql("SET LOCAL search_path = ''")
                database.query(conn, path.stem, **{k: SAMPLE_PARAMS[k] for k in names})
            except database.ExtensionMissing:
                pass   # a server without pg_stat_statements: nothing to name
            except SQLAlchemyError as exc:
                failed[path.stem] = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            finally:
                database.end_guarded(conn)
    assert not failed, failed


@pytest.mark.parametrize("name, judges, ranked_by", [
    ("index_usage", {"min_rows": 0, "min_scans": 0, "max_index_pct": 101}, "seq_tup_read"),
    ("vacuum_stats", {"lag_factor": -1}, "dead_rows")])
def test_catalogue_queries_return_the_top_rows_and_every_row_their_check_judges(engine, name, judges, ranked_by):
    """index_usage and vacuum_stats are bounded (:limit) but never drop a row their check would flag: with
    thresholds that flag every table, every table comes back whatever the limit; without, only the top :limit."""
    never = {"min_rows": 10**12, "min_scans": 10**12, "max_index_pct": 0} if name == "index_usage" \
        else {"lag_factor": 10**12}
    every = database.query(engine, name, limit=1, **judges)
    top = database.query(engine, name, limit=2, **never)
    assert len(top) == 2 and len(every) > 2
    assert list(top["table_name"]) == list(every["table_name"][:2])
    assert every[ranked_by].is_monotonic_decreasing


def _idle_session(dsn: str, app: str) -> psycopg.Connection:
    """A session that ran a marked query and stays idle in transaction."""
    conn = psycopg.connect(dsn, application_name=app)
    conn.execute(f"SELECT '{app}' AS marker")
    return conn


def _peers(frame):
    """The test's two peer sessions' rows, without the columns that tick with the clock."""
    rows = frame[frame["application"].str.startswith("aias-test/peer-")]
    return rows.drop(columns=[c for c in ("idle_s", "transaction_s", "oldest_state_s") if c in rows]) \
        .sort_values("application").reset_index(drop=True)


def test_the_monitoring_role_sees_what_a_superuser_sees(engine, sandbox):
    """Statistics views and the playbook's row counts give the superuser's answer, not a filtered one."""
    superuser = database.connect(Secret("admin", sandbox_dsn()), "aias-runbooks/test/superuser")
    peers = [_idle_session(sandbox_dsn(), "aias-test/peer-superuser"), _idle_session(app_dsn(), "aias-test/peer-app")]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:      # both peers idle in transaction, as seen by the server
            idle = database.query(superuser, "idle_in_transaction", min_idle_s=0, application=None)
            if {"aias-test/peer-superuser", "aias-test/peer-app"} <= set(idle["application"]):
                break
            time.sleep(0.1)
        for name, params in [("idle_in_transaction", {"min_idle_s": 0, "application": None}),
                             ("connections_by_state", {})]:
            as_monitor, as_superuser = (_peers(database.query(e, name, **params)) for e in (engine, superuser))
            assert len(as_monitor) == 2 and as_monitor.equals(as_superuser), name
        for name, params in [("pg_stat_statements_status", {}), ("rls_lint", {"schemas": ["public"]}),
                             ("applied_migrations", {"limit": 100}), ("active_users_30d", {}),
                             ("subscription_tiers", {}), ("workflow_usage_7d", {}), ("recent_error_logs", {})]:
            as_monitor, as_superuser = (database.query(e, name, **params) for e in (engine, superuser))
            assert as_monitor.equals(as_superuser), name
        for name, params in [("index_usage", {"limit": 1000, "min_rows": 1, "min_scans": 1, "max_index_pct": 0}),
                             ("vacuum_stats", {"limit": 1000, "lag_factor": 2})]:
            as_monitor, as_superuser = (database.query(e, name, **params)["table_name"] for e in (engine, superuser))
            assert set(as_monitor) == set(as_superuser), name
        if database.query(engine, "pg_stat_statements_status").iloc[0]["version"] is not None:
            statements = database.query(engine, "slow_queries", min_calls=1, limit=1000)
            assert not statements.empty and not statements["query"].str.contains("insufficient privilege").any()
            assert statements["query"].str.contains("FROM profiles WHERE id").any(), "the app's (aias_app) queries"
    finally:
        for conn in peers:
            conn.close()
        superuser.dispose()
