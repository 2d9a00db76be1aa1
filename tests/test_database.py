"""The read-only database source against the sandbox's real Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aias_runbooks.settings import load_environment
from aias_runbooks.sources import database

from .conftest import sandbox_password


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


def test_secret_never_prints_itself(sandbox):
    secret = load_environment("sandbox").secret("database_url")
    password = sandbox_password()
    assert password not in repr(secret) and password not in str(secret) and password not in f"{secret}"
    assert repr(secret) == "Secret(AIAS_SANDBOX_DATABASE_URL=***)"
