"""Postgres, read-only: one connection, bounded statements, named queries from aias_runbooks/sql/."""

from __future__ import annotations

from functools import cache

import pandas as pd
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from .. import paths
from ..settings import Secret


def connect(dsn: Secret, application_name: str, statement_timeout_ms: int = 5000,
            lock_timeout_ms: int = 1000, connect_timeout_s: int = 5) -> Engine:
    """A read-only engine that never holds more than one connection.

    Every session starts read-only with statement and lock timeouts, and names itself so it can be
    found (and told apart from the application) in pg_stat_activity.
    """
    url = make_url(dsn.reveal()).set(drivername="postgresql+psycopg")
    options = " ".join([
        "-c default_transaction_read_only=on",
        f"-c statement_timeout={statement_timeout_ms}",
        f"-c lock_timeout={lock_timeout_ms}",
        f"-c idle_in_transaction_session_timeout={max(statement_timeout_ms * 2, 10000)}",
    ])
    return create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=connect_timeout_s,
                         connect_args={"application_name": application_name[:63], "options": options,
                                       "connect_timeout": connect_timeout_s})


@cache
def load_sql(name: str) -> tuple[str, str]:
    """(description, text) of aias_runbooks/sql/<name>.sql; the first line is `-- description`."""
    path = paths.sql_dir() / f"{name}.sql"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in paths.sql_dir().glob("*.sql")))
        raise KeyError(f"no query named '{name}'; valid: {valid}")
    sql = path.read_text()
    first = sql.splitlines()[0] if sql else ""
    return first.removeprefix("--").strip(), sql


def query(engine: Engine, name: str, **params) -> pd.DataFrame:
    """Run the named query with bound parameters; the frame's attrs carry its name and description."""
    description, sql = load_sql(name)
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(sql), conn, params=params)
    frame.attrs.update(query=name, description=description)
    return frame
