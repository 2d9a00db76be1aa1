"""The buffer cache over a recent window: two snapshots of pg_statio_user_tables / pg_statio_user_indexes `seconds`
apart, taken within the run.

The statio counters accumulate from the last statistics reset, so a bulk load an hour ago (a restore, `sandbox up
--scale large`) keeps dragging the cumulative hit ratio down long after the platform is back to reading from memory,
and the table it last touched looks like where the misses go. The window's figures are the difference of two
snapshots (sql/cache_relations.sql), per relation; the cumulative ones, with the statistics' age (sql/stats_reset.sql),
stay as the fallback when the window saw too little to judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from ..timestamps import window_period

Query = Callable[..., pd.DataFrame]
KEYS = ["kind", "relid", "relation", "table_name"]


@dataclass
class CacheWindow:
    """Two snapshots of the per-relation block hits and reads, and when the statistics were last reset."""

    seconds: float
    started: datetime | None = None
    ended: datetime | None = None
    before: pd.DataFrame = field(default_factory=pd.DataFrame)
    after: pd.DataFrame = field(default_factory=pd.DataFrame)
    stats_since: str = "unknown"        # pg_stat_database.stats_reset, or "never reset"
    stats_age_s: float | None = None    # seconds since that reset (None: never reset, or unknown)
    error: str | None = None

    @property
    def period(self) -> str:
        """The window as it was measured: its length and its UTC clock times."""
        return window_period(self.seconds, self.started, self.ended)

    def delta(self) -> pd.DataFrame:
        """Per relation (kind, relid, relation, table_name): hits and reads within the window, only those
        accessed in it. A counter that went down (a statistics reset inside the window) counts from zero."""
        if self.after.empty:
            return pd.DataFrame(columns=[*KEYS, "hits", "reads"])
        before = self.before[[*KEYS, "hits", "reads"]] if not self.before.empty else \
            pd.DataFrame(columns=[*KEYS, "hits", "reads"])
        merged = self.after.merge(before, on=KEYS, how="left", suffixes=("", "_before"))
        for column in ("hits", "reads"):
            earlier = merged[f"{column}_before"].fillna(0).astype("int64")
            now = merged[column].astype("int64")
            merged[column] = (now - earlier).where(now >= earlier, now)
        changed = merged[(merged["hits"] + merged["reads"]) > 0]
        return changed[[*KEYS, "hits", "reads"]].reset_index(drop=True)

    def cumulative(self) -> pd.DataFrame:
        """Per relation: hits and reads since the statistics were last reset (the second snapshot)."""
        if self.after.empty:
            return pd.DataFrame(columns=[*KEYS, "hits", "reads"])
        return self.after[[*KEYS, "hits", "reads"]].reset_index(drop=True)


def window(query: Query, seconds: float) -> CacheWindow:
    """Snapshot the per-relation statio counters, wait `seconds`, snapshot again; the statistics' age with them.

    Each snapshot is its own transaction (rb.query), so the second is not the first one's cached copy."""
    result = CacheWindow(seconds)
    reset = query("stats_reset")
    if not reset.empty and not reset.attrs.get("error"):
        row = reset.iloc[0]
        if pd.notna(row["stats_reset"]):
            result.stats_since = pd.Timestamp(row["stats_reset"]).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
            result.stats_age_s = float(row["age_s"])
        else:
            result.stats_since = "never reset"
    before = query("cache_relations")
    if before.attrs.get("error"):
        result.error = before.attrs["error"]
        return result
    result.started = datetime.now(timezone.utc)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:   # the stated interval itself, not a wait for a condition
        time.sleep(left)
    after = query("cache_relations")
    result.ended = datetime.now(timezone.utc)
    if after.attrs.get("error"):
        result.error = after.attrs["error"]
        return result
    result.before, result.after = before, after
    return result


def age_text(seconds: float | None) -> str:
    """A statistics age for people: '3 min', '5.2 h', '12 days'; 'unknown' when None."""
    if seconds is None:
        return "unknown"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
