"""Every named diagnosis query against a running sandbox: median of N runs (default 5) against the 50 ms target,
then EXPLAIN (ANALYZE, BUFFERS) of each (issue 10: "EXPLAIN of every named query kept in the benchmark output").

Runs as the runbooks do: the sandbox profile's database_url (the monitoring role), a read-only session, the
library's own SQL loading and binding (sources.database.query). Skips the guarded actions (-- ACTION:). Usage:
    .venv/bin/python benchmarks/queries.py [N]          # the sandbox in .sandbox/, or AIAS_SANDBOX_DIR
For the issue's target, bring the sandbox up at large scale first: `aias-runbooks sandbox up --scale large`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import pandas as pd
from sqlalchemy import text

from aias_runbooks import paths
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import database

TARGET_MS = 50
# What the notebooks pass (limits their top 15; thresholds from params/thresholds.yaml); :before and :ids are real.
PARAMS = {"limit": 15, "min_idle_s": 0, "application": None, "min_seconds": 0, "min_calls": 1, "min_blocked_s": 5,
          "window_minutes": 60, "user_ids": ["00000000-0000-4000-8000-000000000000"], "schemas": ["public"],
          "stuck_minutes": 5, "min_share": 0.8, "min_rows": 10000, "min_scans": 50, "max_index_pct": 50,
          "lag_factor": 2, "tables": ["public.error_logs", "public.api_requests"], "baseline_days": 30,
          "known_origins": ["127.0.0.0/8", "::1/128"], "since": "2026-01-01T00:00:00Z"}


# Reads every row by design (a backup's per-table counts and checksums, in the dump's snapshot): its cost is part
# of database-backup's create and verify times, not a diagnosis query held to the 50 ms target.
WHOLE_TABLES = {"backup_tables"}


def named_queries() -> list[str]:
    return sorted(p.stem for p in paths.sql_dir().glob("*.sql")
                  if "-- ACTION:" not in p.read_text() and p.stem not in WHOLE_TABLES)


def params_of(name: str, real: dict) -> dict:
    _, sql = database.load_sql(name)
    names = set(text(sql).compile().params)
    missing = names - PARAMS.keys() - real.keys()
    if missing:
        raise SystemExit(f"{name}: give PARAMS a value for {sorted(missing)}")
    return {k: real.get(k, PARAMS.get(k)) for k in names}


def measure(runs: int) -> tuple[str, pd.DataFrame, list[tuple[str, str]]]:
    """(what the sandbox holds, the table of medians, each query's EXPLAIN) from `runs` runs of each query."""
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/bench/queries")
    with engine.connect() as conn:
        snapshot = database.query(conn, "statements_snapshot")
        real = {"before": json.dumps([{"queryid": int(r.queryid), "calls": int(r.calls), "total_ms": float(r.total_ms)}
                                      for r in snapshot.itertuples()]),
                "ids": [r[0] for r in conn.execute(text(
                    "SELECT id FROM public.stripe_events ORDER BY created_at DESC LIMIT 100")).fetchall()],
                "key_ids": [r[0] for r in conn.execute(text(
                    "SELECT id FROM public.api_keys ORDER BY created_at DESC LIMIT 10")).fetchall()]}
        user = conn.execute(text(   # the member of the most tenants: user-support's heaviest case
            "SELECT m.user_id, u.email, array_agg(m.tenant_id) FROM public.tenant_members m "
            "JOIN auth.users u ON u.id = m.user_id GROUP BY m.user_id, u.email ORDER BY count(*) DESC LIMIT 1")).one()
        real |= {"user_id": user[0], "email": user[1], "tenant_ids": list(user[2])}
        counts = conn.execute(text(
            "SELECT (SELECT reltuples::bigint FROM pg_class WHERE oid = 'public.api_requests'::regclass),"
            " (SELECT count(*) FROM pg_stat_user_tables), (SELECT count(*) FROM pg_stat_statements)")).fetchone()
        rows, plans = [], []
        for name in named_queries():
            params = params_of(name, real)
            times, frame = [], None
            for _ in range(runs):
                start = time.perf_counter()
                frame = database.query(conn, name, **params)
                times.append(1000 * (time.perf_counter() - start))
            median = statistics.median(times)
            rows.append({"query": name, "median_ms": round(median, 1), "max_ms": round(max(times), 1),
                         "rows": len(frame), "target_ms": TARGET_MS, "within": "yes" if median <= TARGET_MS else "NO"})
            _, sql = database.load_sql(name)
            plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS)\n" + sql), params).fetchall()
            plans.append((name, "\n".join(r[0] for r in plan)))
    engine.dispose()
    held = (f"sandbox {paths.sandbox_dir()}: ~{counts[0]:,} api_requests, {counts[1]:,} tables, "
            f"{counts[2]:,} statements in pg_stat_statements; {runs} runs each, as aias_monitor")
    return held, pd.DataFrame(rows), plans


def main(runs: int) -> None:
    held, table, plans = measure(runs)
    print(held + "\n")
    print(table.to_string(index=False))
    over = table[table["within"] == "NO"]
    print(f"\n{len(table) - len(over)} of {len(table)} queries within {TARGET_MS} ms median"
          + (f"; over: {', '.join(over['query'])}" if len(over) else ""))
    for name, plan in plans:
        print(f"\n=== EXPLAIN (ANALYZE, BUFFERS) {name}\n{plan}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
