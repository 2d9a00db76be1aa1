"""Issue 24's queries at large scale: the Postgres depth checks (wraparound, slots, sequences, broken, bloated and
unused indexes, role settings and connections, the cache window's snapshot) against the 50 ms target, median of N
runs each (default 5), and database-inspect's whole export (every query of inspect.FIGURES, written as CSV and
JSON) as one timing.

Runs as the runbooks do: the sandbox profile's database_url (the monitoring role), a read-only session, the
library's SQL loading and binding, each query's parameters as database-inspect gives them. `make bench` runs it
against its large sandbox (.bench/large, brought up by bench.py); by hand, against any sandbox:
    AIAS_SANDBOX_DIR=... .venv/bin/python benchmarks/db_depth.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from aias_runbooks import inspect, paths
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import database
from aias_runbooks.thresholds import load_thresholds

TARGET_MS = 50
DEPTH = ["xid_age_databases", "xid_age_tables", "xid_horizon", "replication_slots", "sequence_room",  # C's
         "invalid_indexes", "duplicate_indexes",
         "table_bloat", "index_bloat", "unused_indexes", "role_settings", "role_connections",          # D's
         "disk_usage", "checkpoints",
         "cache_relations", "stats_reset"]                                                             # E's


def measure(runs: int) -> tuple[str, pd.DataFrame]:
    """(what the sandbox holds, one row per query: median and max ms, rows, within target) and the export's row."""
    thresholds = load_thresholds()
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/bench/db-depth")
    rows = []
    with engine.connect() as conn:
        held = conn.execute(text(
            "SELECT (SELECT reltuples::bigint FROM pg_class WHERE oid = 'public.api_requests'::regclass),"
            " (SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'i')),"
            " pg_size_pretty(pg_database_size(current_database()))")).one()
        for name in [n for n in DEPTH if (paths.sql_dir() / f"{n}.sql").is_file()]:
            params = inspect.parameters(name, thresholds, 100, ["public"])
            times, frame = [], None
            for _ in range(runs):
                start = time.perf_counter()
                frame = database.query(conn, name, **params)
                times.append(1000 * (time.perf_counter() - start))
            rows.append(_row(name, times, len(frame), TARGET_MS))
        times, figures = [], 0
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as where:
                start = time.perf_counter()
                listing = inspect.export(lambda n, **p: database.query(conn, n, **p), thresholds, Path(where), 100,
                                         ["public"])
                times.append(1000 * (time.perf_counter() - start))
                figures = len(listing)
        rows.append(_row(f"database-inspect export ({figures} figures, CSV + JSON)", times, figures, None))
    engine.dispose()
    return (f"sandbox {paths.sandbox_dir()}: ~{held[0]:,} api_requests, {held[1]:,} tables and indexes, {held[2]}; "
            f"{runs} runs each, as aias_monitor"), pd.DataFrame(rows)


def _row(what: str, times: list[float], rows: int, target: float | None) -> dict:
    median = statistics.median(times)
    return {"query": what, "median_ms": round(median, 1), "max_ms": round(max(times), 1), "rows": rows,
            "target_ms": target if target is not None else "", "within": "" if target is None else
            ("yes" if median <= target else "NO")}


def main(runs: int) -> None:
    held, table = measure(runs)
    print(held + "\n")
    print(table.to_string(index=False))
    judged = table[table["within"] != ""]
    over = judged[judged["within"] == "NO"]
    print(f"\n{len(judged) - len(over)} of {len(judged)} depth queries within {TARGET_MS} ms median"
          + (f"; over: {', '.join(over['query'])}" if len(over) else ""))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
