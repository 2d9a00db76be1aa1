"""Fill pg_stat_statements with thousands of distinct statements, as a production database's long tail holds.

`sandbox up --scale large` calls fill() after each statistics reset; benchmarks/statements.py times the slow-query
reads against it. Each statement is `SELECT 1 WHERE 1 IN (1, ...) AND 2 IN (2, ...)` with a different length of
each list: pg_stat_statements (before PostgreSQL 18 squashes IN lists) counts each shape as its own statement.
"""

from __future__ import annotations

import psycopg

SIDE = 70   # SIDE x SIDE statements: 4,900, under pg_stat_statements.max (default 5,000)


def fill(conn: psycopg.Connection, side: int = SIDE) -> int:
    """Run side x side distinct statements once each on conn; returns how many statements are now counted."""
    for a in range(1, side + 1):
        for b in range(1, side + 1):
            conn.execute(f"SELECT 1 WHERE 1 IN ({','.join(['1'] * a)}) AND 2 IN ({','.join(['2'] * b)})")
    return conn.execute("SELECT count(*) FROM extensions.pg_stat_statements").fetchone()[0]


def refill(state: dict, conn: psycopg.Connection) -> int | None:
    """After a statistics reset at scale large (with pg_stat_statements): fill() again, so the long tail is back;
    how many statements are counted, or None where there is nothing to refill."""
    if state.get("scale", "default") != "large" or not state["components"]["postgres"].get("pg_stat_statements"):
        return None
    return fill(conn)
