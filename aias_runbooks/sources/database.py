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
import psycopg
from psycopg import sql as psql
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from .. import paths
from ..dsn import split_url
from ..settings import Secret

PING_COLUMNS = ["sample", "sent_at", "answered", "latency_ms", "ok", "error"]
# Where a named query writes the schema pg_stat_statements lives in (psql's :"name" syntax, which SQLAlchemy's
# :name parameters leave alone): filled by render() with the schema the guarded transaction found, quoted.
STATEMENTS_SCHEMA = "statements_schema"
STATEMENTS_PLACEHOLDER = f':"{STATEMENTS_SCHEMA}"'
STATEMENT_TIMEOUT_MS = 5000   # what every guarded transaction sets and checks unless connect() is told otherwise
LOCK_TIMEOUT_MS = 1000
ANSWER_WITHIN_S = 15   # the session's statement_timeout (5 s) and lock_timeout, and room for a slow network


def connect(dsn: Secret, application_name: str, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
            lock_timeout_ms: int = LOCK_TIMEOUT_MS, connect_timeout_s: int = 5) -> Engine:
    """An autocommit engine that never holds more than one connection, whose queries run guarded (query()).

    Nothing is asked of the session itself, because a pooler drops or refuses it: PgBouncer refuses the startup
    `options` parameter, and in transaction mode the next transaction may run on another server session. So every
    named query runs in a transaction of its own that is read-only with statement and lock timeouts, set and read
    back inside it (begin_guarded), and no statement is prepared server-side (a transaction-mode pooler hands the
    next statement to a session that has not got it). The transaction ends with the query, so the diagnosis never
    shows up as idle in transaction itself. The session names itself (application_name is a startup parameter
    PgBouncer passes through) so it can be found, and told apart from the application, in pg_stat_activity. The
    URL is read by dsn.split_url, as the secret scan reads it, so a password with an unencoded '@' reaches the
    server whole.
    """
    try:
        parts = split_url(dsn.reveal())
    except ValueError as exc:   # the message never quotes the URL
        raise ArgumentError(f"{dsn.name}: {exc}") from None
    url = URL.create(drivername="postgresql+psycopg", username=parts.username, password=parts.password,
                     host=parts.host, port=parts.port, database=parts.database, query=parts.query)
    engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=connect_timeout_s,
                           isolation_level="AUTOCOMMIT",
                           connect_args={"application_name": application_name[:63], "prepare_threshold": None,
                                         "connect_timeout": connect_timeout_s})

    @event.listens_for(engine, "connect")
    def _guards(dbapi_connection, record) -> None:   # what begin_guarded asks of each transaction
        record.info["guards"] = Guards(statement_timeout_ms, lock_timeout_ms)

    return engine


class Guards(tuple):
    """(statement_timeout_ms, lock_timeout_ms) every guarded transaction of a connection sets and checks."""

    def __new__(cls, statement_timeout_ms: int, lock_timeout_ms: int) -> Guards:
        return super().__new__(cls, (int(statement_timeout_ms), int(lock_timeout_ms)))

    def preamble(self, isolation: str = "") -> str:
        """One round trip (simple query protocol, several statements): begin read-only, the timeouts, the search
        path as a transaction setting (pg_catalog alone: every other object is named with its schema, so a role's
        or a pooler's search_path changes nothing), then the schema pg_stat_statements lives in (`extensions` on
        Supabase; NULL when not installed), the role, and the settings read back as the server holds them inside
        the transaction."""
        statement_ms, lock_ms = self
        return (f"BEGIN {isolation} READ ONLY; SET LOCAL statement_timeout = {statement_ms}; "
                f"SET LOCAL lock_timeout = {lock_ms}; SET LOCAL search_path = pg_catalog; "
                "SELECT (SELECT n.nspname FROM pg_catalog.pg_extension e"
                " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'),"
                " current_user, pg_catalog.current_setting('transaction_read_only'), "
                "(SELECT setting FROM pg_catalog.pg_settings WHERE name = 'statement_timeout'), "
                "(SELECT setting FROM pg_catalog.pg_settings WHERE name = 'lock_timeout')")

    def missing(self, read_only: str, statement_ms: str, lock_ms: str) -> dict[str, str]:
        """The guarantees the transaction does not have: setting -> what was asked and what the server holds."""
        wanted = {"transaction_read_only": ("on", read_only), "statement_timeout": (str(self[0]), statement_ms),
                  "lock_timeout": (str(self[1]), lock_ms)}
        return {name: f"{name} is {held!r}, not {want!r}" for name, (want, held) in wanted.items() if held != want}

    def role_settings(self, role: str, names: list[str]) -> str:
        """The ALTER ROLE statements that give `role` the guarantees `names` as its own defaults."""
        values = {"transaction_read_only": "default_transaction_read_only = on",
                  "statement_timeout": f"statement_timeout = {self[0]}", "lock_timeout": f"lock_timeout = {self[1]}"}
        quoted = psql.Identifier(role).as_string(None)
        return "; ".join(f"ALTER ROLE {quoted} SET {values[name]}" for name in names)


class GuardMissing(SQLAlchemyError):
    """A guarded transaction did not get read-only or its timeouts: no query runs in it. The message says which
    guarantee is missing (all of them when the transaction could not be opened) and how to get it."""


def begin_guarded(connection: Connection, isolation: str = "") -> None:
    """Open a read-only transaction with the connection's timeouts and check, inside it, that the server holds them
    (GuardMissing when not, the transaction rolled back). `isolation` e.g. "ISOLATION LEVEL REPEATABLE READ".
    The caller ends the transaction (end_guarded)."""
    guards = connection.connection.info.get("guards") or Guards(STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS)
    try:
        schema, role, *held = _driver_execute(connection, guards.preamble(isolation))
    except DBAPIError as exc:
        # Refused, not lost: the server or pooler answered with an error (a statement-mode pooler refuses any
        # transaction block, and disconnects); a shutdown (class 57) or a dead socket (no SQLSTATE) is a lost one.
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if not sqlstate or sqlstate.startswith("57"):
            raise
        end_guarded(connection)
        first = str(exc.orig).strip().splitlines()
        raise GuardMissing(f"no guarantee holds: the read-only transaction could not be opened: "
                           f"{first[0] if first else exc} (use the direct, session or transaction connection "
                           "string)") from exc
    if missing := guards.missing(*held):
        end_guarded(connection)
        raise GuardMissing("the diagnosis session is not guarded: " + "; ".join(missing.values()) + " (make them "
                           f"the role's own: {guards.role_settings(role, list(missing))}; or use the direct or "
                           "session connection string)")
    connection.info[STATEMENTS_SCHEMA] = schema


def end_guarded(connection: Connection) -> None:
    """Roll back the guarded transaction (it wrote nothing); nothing to do on a connection already lost."""
    if connection.closed or connection.invalidated:
        return
    with contextlib.suppress(SQLAlchemyError):
        _driver_execute(connection, "ROLLBACK")


def _driver_execute(connection: Connection, sql: str) -> tuple | None:
    """Run several statements in one round trip (psycopg's simple query protocol, which SQLAlchemy cannot return
    the last result of); the last result's first row. A driver error is raised as SQLAlchemy's (DBAPIError), the
    connection invalidated when it broke, as for any other statement."""
    driver = connection.connection.driver_connection
    try:
        cursor = driver.execute(sql)
        while cursor.nextset():
            pass
        return cursor.fetchone() if cursor.description else None
    except psycopg.Error as exc:
        lost = driver.closed or driver.broken
        if lost:
            connection.invalidate()
        raise DBAPIError.instance(sql.split(";")[0], None, exc, psycopg.Error, connection_invalidated=lost) from exc


@cache
def load_sql(name: str) -> tuple[str, str]:
    """(description, text) of aias_runbooks/sql/<name>.sql; the first line is `-- description`."""
    path = paths.sql_dir() / f"{name}.sql"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in paths.sql_dir().glob("*.sql")))
        raise KeyError(f"no query named '{name}'; valid: {valid}")
    sql = path.read_text()
    return sql.splitlines()[0].removeprefix("--").strip(), sql


class ExtensionMissing(SQLAlchemyError):
    """A named query reads pg_stat_statements, which this database has not installed."""


def render(connection: Connection, sql: str) -> str:
    """sql with the placeholder of pg_stat_statements' schema filled with the schema the connection's guarded
    transaction found (begin_guarded), as a quoted identifier; ExtensionMissing when there is none."""
    if STATEMENTS_PLACEHOLDER not in sql:
        return sql
    schema = connection.info.get(STATEMENTS_SCHEMA)
    if not schema:
        raise ExtensionMissing("pg_stat_statements is not installed in this database (on Supabase: Database > "
                               "Extensions; else CREATE EXTENSION pg_stat_statements)")
    quoted = psql.Identifier(schema).as_string(connection.connection.driver_connection)
    return sql.replace(STATEMENTS_PLACEHOLDER, quoted)


class NoAnswer(DisconnectionError):
    """The server accepted the statement and never answered: it is frozen, or the network drops packets."""


@contextmanager
def answer_within(connection: Connection, seconds: float = ANSWER_WITHIN_S) -> Iterator[None]:
    """A client-side bound on the round trips inside the block. statement_timeout is enforced by the server, so a
    frozen server (or a silent network: the kernel still ACKs, keepalives pass) would hold the run until the cell
    timeout; past `seconds` the socket is shut down and the block fails as a lost connection (NoAnswer), the
    connection invalidated. That holds also when the cut-off statement's error was swallowed inside the block (the
    closing ROLLBACK of a guarded query): a connection cut once is never used again as if it were whole."""
    try:
        fd = connection.connection.dbapi_connection.pgconn.socket
    except Exception:  # noqa: BLE001 - no live socket: nothing to bound
        yield
        return
    cut = threading.Event()
    timer = threading.Timer(seconds, _shut, (fd, cut))
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if cut.is_set():
            raise _no_answer(connection, seconds) from exc
        raise
    finally:
        timer.cancel()
    if cut.is_set():
        raise _no_answer(connection, seconds)


def _no_answer(connection: Connection, seconds: float) -> NoAnswer:
    if not (connection.closed or connection.invalidated):
        with contextlib.suppress(Exception):
            connection.invalidate()
    return NoAnswer(f"no answer from the database within {seconds:.0f} s (frozen server or silent network); the "
                    "connection was cut")


def _shut(fd: int, cut: threading.Event) -> None:
    """Mark the connection cut (before the statement waiting on it can fail), then shut its socket down."""
    cut.set()
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def query(connection: Connection | Engine, name: str, **params) -> pd.DataFrame:
    """Run the named query with bound parameters; the frame's attrs carry its name and description."""
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            return query(conn, name, **params)
    description, sql = load_sql(name)
    own = idle(connection)    # in a caller's transaction (begin_guarded) the query runs there, as guarded
    with answer_within(connection):
        if own:
            begin_guarded(connection)
        try:
            result = connection.execute(text(render(connection, sql)), params)
            rows = [tuple(row) for row in result.fetchall()]   # pandas reads plain tuples 10x faster than Rows
        finally:
            if own:
                end_guarded(connection)
    frame = pd.DataFrame.from_records(rows, columns=list(result.keys()), coerce_float=True)
    frame.attrs.update(query=name, description=description)
    return frame


def idle(connection: Connection) -> bool:
    """True when the session is outside any transaction (psycopg's view of the server's last ReadyForQuery): a
    guarded query then opens its own transaction, else it runs in the caller's."""
    return connection.connection.driver_connection.info.transaction_status == TransactionStatus.IDLE


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
