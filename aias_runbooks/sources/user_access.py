"""A user's reads under row level security, as Supabase's PostgREST runs them, compared with what exists.

In one READ ONLY, REPEATABLE READ transaction of the run's own connection: the app's reads for the user
(`aias_runbooks.user_reads`, named query `user_reads`) as the monitoring role (its policies see every row: what exists
for this user's memberships), then the same reads as the user (`aias_runbooks.user_reads_as_user`, named query
`user_reads_as_user`): a STABLE, SECURITY DEFINER function owned by `authenticated` that sets the user's JWT claims
for the call. The monitor itself can never become authenticated (it could then write as any user); that one function
is its only way to see through a user's eyes, and it cannot write. One snapshot serves both reads, so a row written
meanwhile cannot make a difference; the transaction is always rolled back.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import first_line
from .database import answer_within, begin_guarded, load_sql

READS = "user_reads"
READS_AS_USER = "user_reads_as_user"
COLUMNS = ["table", "read", "expected", "visible"]


def compare(conn: Connection, user_id: str, email: str | None, tenant_ids: list[str], since: Any) -> pd.DataFrame:
    """Rows per read: `expected` as the monitoring role sees them, `visible` as the user sees them under RLS.

    Never raises for a database error: the frame is then empty, with attrs["error"] (the server's first line) and
    attrs["setup_missing"] when the database lacks the functions or the monitor may not execute them
    (docs/security.md, The monitoring role).
    """
    description, sql = load_sql(READS)
    _, sql_as_user = load_sql(READS_AS_USER)
    params = {"user_id": user_id, "tenant_ids": list(tenant_ids), "since": since}
    frame = pd.DataFrame(columns=COLUMNS)
    frame.attrs.update(query=READS, description=description)
    step = "begin"
    try:
        with answer_within(conn):
            begin_guarded(conn, "ISOLATION LEVEL REPEATABLE READ")
            step = "read as the monitoring role"
            expected = conn.execute(text(sql), params).fetchall()
            step = "read as the user"
            visible = conn.execute(text(sql_as_user), params | {"email": email or ""}).fetchall()
    except SQLAlchemyError as exc:
        frame.attrs["error"] = f"{step}: {first_line(exc)}"
        frame.attrs["setup_missing"] = _setup_missing(exc)
        return frame
    finally:
        _rollback(conn)
    seen = {row[0]: int(row[2]) for row in visible}
    rows = [{"table": t, "read": r, "expected": int(n), "visible": seen.get(t, 0)} for t, r, n in expected]
    result = pd.DataFrame(rows, columns=COLUMNS)
    result.attrs.update(frame.attrs)
    return result


def _rollback(conn: Connection) -> None:
    """End the transaction whatever happened in it; a connection already lost has nothing to roll back."""
    if conn.closed or conn.invalidated:
        return
    try:
        with answer_within(conn):
            conn.exec_driver_sql("ROLLBACK")
    except SQLAlchemyError:
        pass


def _setup_missing(exc: SQLAlchemyError) -> bool:
    """The functions are not installed (undefined_function, invalid_schema_name) or not granted
    (insufficient_privilege): a set-up step, not a fault of the user's data."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in {"42883", "3F000", "42501"}


def test(rb: Any, found: pd.DataFrame, members: pd.DataFrame, since: Any) -> pd.DataFrame | None:
    """compare() on the run's own connection for the account found; None when there is no account to test or no
    database (its finding says why)."""
    if found.empty or members.attrs.get("error"):
        return None
    conn = rb.connection()
    if conn is None:
        return None
    row = found.iloc[0]
    return compare(conn, str(row["user_id"]), row["email"], [str(t) for t in members["tenant_id"]], since)
