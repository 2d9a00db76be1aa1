"""pg_stat_statements over a recent window: two snapshots `seconds` apart, and what the statements waited on.

pg_stat_statements accumulates from its last reset, so a statement fixed an hour ago keeps its bad lifetime
mean. The window's figures are the difference of two snapshots taken within the run; between them the
sessions running each statement (pg_stat_activity.query_id, PostgreSQL 14+) are sampled, so a statement that
is slow because it waits on locks can be told from one that is slow because of its plan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from ..timestamps import window_period

Query = Callable[..., pd.DataFrame]


def available(status: pd.DataFrame) -> bool:
    """pg_stat_statements is installed and preloaded (sql/pg_stat_statements_status.sql), so it can be read."""
    return not status.empty and bool(status.iloc[0]["version"]) and bool(status.iloc[0]["preloaded"])


@dataclass
class Window:
    """The statements of the window (top by time in it) and the wait samples taken during it."""

    seconds: float
    started: datetime | None = None
    ended: datetime | None = None
    stats_since: str = "unknown"            # pg_stat_statements_info.stats_reset, or "unknown" (before 14)
    statements: pd.DataFrame = field(default_factory=pd.DataFrame)
    waits: pd.DataFrame = field(default_factory=pd.DataFrame)   # queryid, lock_samples, active_samples
    samples: int = 0                        # how many times pg_stat_activity was sampled
    query_ids: bool = False                 # whether sessions carried a query_id to sample by
    error: str | None = None

    @property
    def period(self) -> str:
        """The window as it was measured: its length and its UTC clock times."""
        return window_period(self.seconds, self.started, self.ended)


def window(query: Query, status: pd.DataFrame, seconds: float, min_calls: int, limit: int = 10,
           sample_every_s: float = 0.1) -> Window:
    """Snapshot pg_stat_statements, sample pg_stat_activity for `seconds`, and return the statements by time."""
    result = Window(seconds)
    row = status.iloc[0] if not status.empty else None
    version = str(row["version"]) if row is not None else ""
    if row is not None and int(row["server_version_num"]) >= 140000 and _at_least(version, (1, 9)):
        info = query("statements_info")
        if not info.empty:
            reset = info.iloc[0]["stats_reset"]
            result.stats_since = (pd.Timestamp(reset).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
                                  if pd.notna(reset) else "unknown")
            result.query_ids = str(info.iloc[0]["compute_query_id"]) in ("on", "auto", "regress")
    before = query("statements_snapshot")
    if before.attrs.get("error"):
        result.error = before.attrs["error"]
        return result
    result.started = datetime.now(timezone.utc)
    deadline = time.monotonic() + seconds
    counts: dict[str, list[int]] = {}
    every = max(sample_every_s, seconds / 300)
    while deadline - time.monotonic() > 0:
        if result.query_ids:
            sample = query("statement_waits")
            if sample.attrs.get("error"):
                result.query_ids = False
            else:
                result.samples += 1
                for r in sample.itertuples():
                    lock, active = counts.setdefault(r.queryid, [0, 0])
                    counts[r.queryid] = [lock + (r.sessions if r.wait_event_type == "Lock" else 0),
                                         active + r.sessions]
        time.sleep(max(0.0, min(every, deadline - time.monotonic())))
    snapshot = json.dumps([{"queryid": int(r.queryid), "calls": int(r.calls), "total_ms": float(r.total_ms)}
                           for r in before.itertuples()])
    result.ended = datetime.now(timezone.utc)
    result.statements = query("statements_window", before=snapshot, min_calls=min_calls, limit=limit)
    if result.statements.attrs.get("error"):
        result.error = result.statements.attrs["error"]
    result.waits = pd.DataFrame([{"queryid": q, "lock_samples": c[0], "active_samples": c[1]}
                                 for q, c in counts.items()], columns=["queryid", "lock_samples", "active_samples"])
    return result


def _at_least(version: str, wanted: tuple[int, ...]) -> bool:
    try:
        return tuple(int(p) for p in version.split(".")[:2]) >= wanted
    except ValueError:
        return False
