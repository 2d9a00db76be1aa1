"""Points in time given as text (a `[timestamp]` parameter, `schedule run-due --now`, a window's `now`): ISO 8601
with a UTC offset, so that which moment is meant is never a guess about the machine's time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

EXPECTED = "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-11-01T07:00:00Z"


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date and time with a UTC offset (`Z` or `+hh:mm`) as an aware datetime; ValueError saying what
    is expected (a time without an offset is refused: which zone it means would be a guess)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(EXPECTED) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(EXPECTED)
    return moment


def recorded_time(text: Any) -> datetime | None:
    """A time as a run record holds it (started_at: ISO 8601, the runner writes it with an offset; one without is
    UTC); None when it is not one. Lenient where parse_timestamp is strict: records are read, not typed in."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def window_period(seconds: float, started: datetime | None, ended: datetime | None) -> str:
    """A measuring window as a finding states it: its measured length and UTC clock times, or the planned length
    when it was not measured (the snapshots failed)."""
    if started is None or ended is None:
        return f"the last {seconds:g} s"
    return f"{(ended - started).total_seconds():.1f} s ({started:%H:%M:%S}–{ended:%H:%M:%S} UTC)"
