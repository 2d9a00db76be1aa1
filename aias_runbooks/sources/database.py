"""Postgres, read-only: one connection, bounded statements, named queries from aias_runbooks/sql/."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cache

import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.pool import QueuePool

from .. import paths
from ..dsn import split_url
from ..settings import Secret

PING_COLUMNS = ["sample", "sent_at", "answered", "latency_ms", "ok", "error"]
ANSWER_WITHIN_S = 15   # the session's statement_timeout (5 s) and lock_timeout, and room for a slow network


def connect(dsn: Secret, application_name: str, statement_timeout_ms: int = 5000,
            lock_timeout_ms: int = 1000, connect_timeout_s: int = 5) -> Engine:
    """A read-only, autocommit engine that never holds more than one connection.

    Every statement runs read-only with statement and lock timeouts, outside any lingering transaction (so
    the diagnosis never shows up as idle in transaction itself), and the session names itself so it can
    be found, and told apart from the application, in pg_stat_activity. The URL is read by dsn.split_url, as
    the secret scan reads it, so a password with an unencoded '@' reaches the server whole.
    """
    try:
        parts = split_url(dsn.reveal())
    except ValueError as exc:   # the message never quotes the URL
        raise ArgumentError(f"{dsn.name}: {exc}") from None
    url = URL.create(drivername="postgresql+psycopg", username=parts.username, password=parts.password,
                     host=parts.host, port=parts.port, database=parts.database, query=parts.query)
    options = " ".join([
        "-c default_transaction_read_only=on",
        f"-c statement_timeout={statement_timeout_ms}",
        f"-c lock_timeout={lock_timeout_ms}",
        "-c search_path=public,extensions",
    ])
    return create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=connect_timeout_s,
                         isolation_level="AUTOCOMMIT",
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
    return sql.splitlines()[0].removeprefix("--").strip(), sql


class NoAnswer(DisconnectionError):
    """The server accepted the statement and never answered: it is frozen, or the network drops packets."""


@contextmanager
def answer_within(connection: Connection, seconds: float = ANSWER_WITHIN_S) -> Iterator[None]:
    """A client-side bound on one round trip. statement_timeout is enforced by the server, so a frozen server
    (or a silent network: the kernel still ACKs, keepalives pass) would hold the run until the cell timeout;
    past `seconds` the socket is shut down and the statement fails as a lost connection (NoAnswer)."""
    try:
        fd = connection.connection.dbapi_connection.pgconn.socket
    except Exception:  # noqa: BLE001 - no live socket: nothing to bound
        yield
        return
    timer = threading.Timer(seconds, _shut, (fd,))
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if not timer.is_alive():
            raise NoAnswer(f"no answer from the database within {seconds:.0f} s (frozen server or silent "
                           "network); the connection was cut") from exc
        raise
    finally:
        timer.cancel()


def _shut(fd: int) -> None:
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def query(connection: Connection | Engine, name: str, **params) -> pd.DataFrame:
    """Run the named query with bound parameters; the frame's attrs carry its name and description."""
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            return query(conn, name, **params)
    description, sql = load_sql(name)
    with answer_within(connection):
        result = connection.execute(text(sql), params)
    rows = [tuple(row) for row in result.fetchall()]   # pandas reads plain tuples 10x faster than Row objects
    frame = pd.DataFrame.from_records(rows, columns=list(result.keys()), coerce_float=True)
    frame.attrs.update(query=name, description=description)
    return frame


def ping(connection: Connection, samples: int = 20, interval_ms: int = 50) -> pd.DataFrame:
    """Round-trip time of `SELECT 1`, `samples` times: what every application query pays at least.

    A failed round trip is a sample (answered=False, its error kept). When the connection is lost the probe
    stops: attrs["planned"] says how many were meant, the rows how many were sent.
    """
    rows = []
    for i in range(1, samples + 1):
        sent_at = datetime.now(timezone.utc)
        start = time.perf_counter()
        try:
            with answer_within(connection):
                connection.execute(text("SELECT 1"))
            error = None
        except Exception as exc:  # a failed round trip is a sample, not a crash
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        rows.append({"sample": i, "sent_at": sent_at, "answered": error is None,
                     "latency_ms": round((time.perf_counter() - start) * 1000, 2), "ok": error is None,
                     "error": error})
        if error and (connection.invalidated or connection.closed):
            break   # the connection is gone: the rest would not be sent (and must not reconnect)
        if i < samples and interval_ms:
            time.sleep(interval_ms / 1000)
    frame = ping_frame(rows)
    frame.attrs["planned"] = samples
    return frame


def ping_frame(rows: list[dict]) -> pd.DataFrame:
    """Ping samples with fixed columns and types, so an empty probe (database unreachable) still filters."""
    return pd.DataFrame(rows, columns=PING_COLUMNS).astype({"answered": bool, "ok": bool, "latency_ms": float})
