"""Slow-query reads at pg_stat_statements' default capacity (~5,000 statements).

Fills pg_stat_statements of the running sandbox (`sandbox up` first; it RESETS the sandbox's statement
statistics) with ~4,900 distinct statements of ~300 characters, then prints the best of N timings (default 5)
of: the lifetime top-10 (slow_queries.sql), the same with every row's text formatted before the top 10 are
chosen (the previous query, for the ratio), one window snapshot without texts (statements_snapshot.sql) and the
window's top 10 against that snapshot (statements_window.sql). Usage:
    .venv/bin/python benchmarks/statements.py [N]
"""

from __future__ import annotations

import json
import sys
import time

import psycopg
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.sandbox.platform.database import statements

EVERY_ROW_FORMATTED = """
SELECT queryid::text, calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 1),
       round((100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1), rows,
       round((coalesce((to_jsonb(s) ->> 'shared_blk_read_time')::float8, (to_jsonb(s) ->> 'blk_read_time')::float8, 0)
            + coalesce((to_jsonb(s) ->> 'shared_blk_write_time')::float8, (to_jsonb(s) ->> 'blk_write_time')::float8, 0)
             )::numeric, 1),
       left(regexp_replace(query, '\\s+', ' ', 'g'), 300)
FROM pg_stat_statements s
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND calls >= :min_calls AND query NOT LIKE '%pg_stat_statements%'
ORDER BY total_exec_time DESC
LIMIT :limit
"""


def as_psycopg(sql: str) -> str:
    return (sql.replace("%", "%%").replace(":min_calls", "%(min_calls)s").replace(":limit", "%(limit)s")
            .replace("CAST(:before AS jsonb)", "CAST(%(before)s AS jsonb)"))


def main(runs: int) -> None:
    dsn = dotenv_values(paths.sandbox_dir() / "sandbox.env")["AIAS_SANDBOX_ADMIN_DATABASE_URL"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT extensions.pg_stat_statements_reset()")
        statements.fill(conn)
        count, length = conn.execute("SELECT count(*), avg(length(query))::int FROM extensions.pg_stat_statements"
                                     ).fetchone()
        conn.execute("SET search_path = public, extensions")

        def best(sql: str, params: dict) -> float:
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                conn.execute(as_psycopg(sql), params).fetchall()
                times.append(time.perf_counter() - start)
            return 1000 * min(times)

        sql = {name: (paths.sql_dir() / f"{name}.sql").read_text()
               for name in ("slow_queries", "statements_snapshot", "statements_window")}
        before = json.dumps([{"queryid": int(q), "calls": int(n), "total_ms": float(ms)}
                             for q, n, ms in conn.execute(sql["statements_snapshot"]).fetchall()])
        top = {"min_calls": 1, "limit": 10}
        rows = [("every row formatted, then top 10 (previous)", best(EVERY_ROW_FORMATTED, top)),
                ("slow_queries.sql: top 10 first, then formatted", best(sql["slow_queries"], top)),
                ("statements_snapshot.sql (no texts)", best(sql["statements_snapshot"], {})),
                ("statements_window.sql (delta, top 10, texts)",
                 best(sql["statements_window"], {**top, "before": before}))]
    print(f"{count} statements in pg_stat_statements, texts {length} characters on average; best of {runs}\n")
    print(f"{'query':<50} {'ms':>8} {'ratio':>7}")
    for name, ms in rows:
        print(f"{name:<50} {ms:>8.1f} {ms / rows[0][1]:>7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
