"""Text any client can set (application_name) or any operator can type (--operator) is shown, never obeyed."""

from __future__ import annotations

import contextlib
import threading

import psycopg

from ..helpers import HOSTILE_APP, live_markup, sandbox_dsn, wait_for

HOSTILE_OPERATOR = "[me](javascript:alert(3)) <b>**bold**</b> | `x`"


def test_a_hostile_application_name_and_operator_stay_text_in_the_report(run, sandbox):
    """A root blocker named like a markdown link and an HTML tag, and an operator with markup: all literal."""
    holder = psycopg.connect(sandbox_dsn(), application_name=HOSTILE_APP)
    waiter = psycopg.connect(sandbox_dsn(), application_name="aias-api", autocommit=True)
    blocked = None
    try:
        row = holder.execute("SELECT id FROM workflows ORDER BY id DESC LIMIT 1").fetchone()[0]
        holder.execute("UPDATE workflows SET updated_at = now() WHERE id = %s", (row,))
        blocked = threading.Thread(target=lambda: _quietly(waiter, row), daemon=True)
        blocked.start()
        with psycopg.connect(sandbox_dsn(), autocommit=True) as probe:
            wait_for(lambda: probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock' "
                "AND now() - query_start > interval '6 seconds'", (waiter.info.backend_pid,)).fetchone()[0], 60,
                "a lock wait long enough to be reported")
        result = run("database-connection-errors", "-p", "latency_samples=10", "--operator", HOSTILE_OPERATOR)
    finally:
        holder.close()                 # its lock goes: the waiter's UPDATE ends, and the thread running it
        blocked and blocked.join(30)   # only then may the waiter close (close() frees it under an execute())
        waiter.close()
    blocking = next(f for f in result.verdict["findings"] if f["code"] == "DB_BLOCKING_LOCKS")
    assert HOSTILE_APP in blocking["title"], "verdict.json keeps the name exactly"
    assert result.verdict["provenance"]["operator"] == HOSTILE_OPERATOR
    html = (result.folder / "report.html").read_text()
    assert live_markup(html) == []
    assert "javascript:alert(1)" in html and "javascript:alert(3)" in html, "shown as text"
    index = (result.output / "index.html").read_text()
    assert live_markup(index) == []


def _quietly(conn: psycopg.Connection, row: int) -> None:
    with contextlib.suppress(psycopg.Error):   # ends when the test closes the connection
        conn.execute("UPDATE workflows SET updated_at = now() WHERE id = %s", (row,))
