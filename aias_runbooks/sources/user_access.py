"""A user's reads under row level security, as Supabase's PostgREST runs them, compared with what exists.

In one READ ONLY, REPEATABLE READ transaction of the run's own connection: the reads of `user_reads.sql` first as
the monitoring role (its policies see every row: what exists for this user's memberships), then, after
`SET LOCAL ROLE authenticated` and `set_config('request.jwt.claims', {sub, role, email}, true)`, the same reads as
the user. One snapshot serves both, so a row written meanwhile cannot make a difference. The transaction is always
rolled back: the role, the claims and anything else it set end with it, and it could not have written anyway.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from .database import answer_within, load_sql

READS = "user_reads"
ROLE = "authenticated"
COLUMNS = ["table", "read", "expected", "visible"]


def claims(user_id: str, email: str | None) -> str:
    """The JWT claims PostgREST sets for a signed-in user's request (what auth.uid(), auth.role() and
    auth.email() read)."""
    return json.dumps({"sub": user_id, "role": ROLE, "email": email or "", "aud": ROLE})


def compare(conn: Connection, user_id: str, email: str | None, tenant_ids: list[str], since: Any) -> pd.DataFrame:
    """Rows per read: `expected` as the monitoring role sees them, `visible` as the user sees them under RLS.

    Never raises for a database error: the frame is then empty, with attrs["error"] (the server's first line) and
    attrs["switch_refused"] when the role could not be switched to authenticated (the monitor is not a member).
    """
    description, sql = load_sql(READS)
    params = {"user_id": user_id, "tenant_ids": list(tenant_ids), "since": since}
    frame = pd.DataFrame(columns=COLUMNS)
    frame.attrs.update(query=READS, description=description)
    step = "begin"
    try:
        with answer_within(conn):
            conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            step = "read as the monitoring role"
            expected = conn.execute(text(sql), params).fetchall()
            step = f"SET LOCAL ROLE {ROLE}"
            conn.exec_driver_sql(f"SET LOCAL ROLE {ROLE}")
            step = "set the user's JWT claims"
            conn.execute(text("SELECT set_config('request.jwt.claims', :claims, true)"),
                         {"claims": claims(user_id, email)})
            step = "read as the user"
            visible = conn.execute(text(sql), params).fetchall()
    except SQLAlchemyError as exc:
        frame.attrs["error"] = f"{step}: {_first_line(exc)}"
        frame.attrs["switch_refused"] = step.startswith("SET LOCAL ROLE")
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


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


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
