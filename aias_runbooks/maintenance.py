"""Maintenance Windows: when the next scheduled window is, its notice deadline, what the window would apply, which
incidents are still open, and the customer notices (checks/maintenance.py turns these into findings).

The schedule is the playbook's "Monthly (first Sunday, 2-4 AM EST)", as data in params/thresholds.yaml
(`maintenance:`, a profile may override it): the `nth` `weekday` of every month, from `start` for
`duration_minutes`, in `timezone` (America/Toronto: the playbook's "EST" is Eastern local time, EST in winter and
EDT in summer), announced `notice_hours` before it starts.

Start and end are wall-clock times in that zone, computed with zoneinfo:
- a start that does not exist that day (the spring-forward gap, 02:00-03:00 on the Sunday daylight saving starts)
  becomes the first moment after the gap (03:00 daylight time); the end stays the announced wall-clock end, so that
  window is one hour shorter and customers keep the end time they were told. Under today's North American rule DST
  starts on the second Sunday of March, so a first-Sunday window never meets the gap; a changed rule or schedule
  (`nth: 2`) would, and tests/runbooks/test_maintenance_window.py checks it;
- a start that occurs twice (the fall-back hour, 01:00-02:00 on the Sunday daylight saving ends) is its first
  occurrence, so the window is never shorter than announced; 02:00 itself is unambiguous (standard time).
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pandas as pd

from .findings import Severity
from .timestamps import parse_timestamp

if TYPE_CHECKING:
    from .runbook import Runbook
    from .sources.migrations import LocalMigration

WEEKDAYS = [d.lower() for d in calendar.day_name]       # monday .. sunday, as date.weekday() numbers them
BACKUP_RUNS = 50            # database-backup verdicts read, newest first, for an earlier verification of a backup
INCIDENT_HOURS = 24
PRE, POST = "pre", "post"     # the runbook's phases: before the window, after it
NO_ALL_CLEAR = ("*No all-clear yet: the checks in section 6 did not pass. Post a status update saying the work "
                "continues.*")


@dataclass(frozen=True)
class Schedule:
    """The window rule: the `nth` `weekday` of each month, `start` local time for `duration` minutes, in `zone`."""

    weekday: int
    nth: int
    start: time
    duration_minutes: int
    zone: ZoneInfo
    notice_hours: float

    @classmethod
    def of(cls, thresholds: Mapping[str, Any]) -> Schedule:
        """From thresholds' `maintenance:` section; ValueError naming the key that is wrong."""
        rule = thresholds["maintenance"]
        weekday = str(rule["weekday"]).strip().lower()
        if weekday not in WEEKDAYS:
            raise ValueError(f"maintenance.weekday must be a day name (sunday, ...), not {rule['weekday']!r}")
        nth = int(rule["nth"])
        if not 1 <= nth <= 4:
            raise ValueError(f"maintenance.nth must be 1..4 (every month has four of each weekday), not {nth}")
        start = time.fromisoformat(str(rule["start"]))
        duration = int(rule["duration_minutes"])
        if not 0 < duration <= 24 * 60:
            raise ValueError(f"maintenance.duration_minutes must be 1..1440, not {duration}")
        return cls(WEEKDAYS.index(weekday), nth, start, duration, ZoneInfo(str(rule["timezone"])),
                   float(rule["notice_hours"]))

    def describe(self) -> str:
        end = (datetime.combine(date.min, self.start) + timedelta(minutes=self.duration_minutes)).time()
        nth = {1: "first", 2: "second", 3: "third", 4: "fourth"}[self.nth]
        return (f"the {nth} {WEEKDAYS[self.weekday].title()} of every month, {self.start:%H:%M}-{end:%H:%M} "
                f"{self.zone.key} local time")


@dataclass(frozen=True)
class Window:
    """One maintenance window: its start and end (aware, in the schedule's zone) and the notice deadline."""

    start: datetime
    end: datetime
    notice_due: datetime
    note: str = ""      # what daylight saving did to it, if anything

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(timezone.utc)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(timezone.utc)

    @property
    def hours(self) -> float:
        return (self.end_utc - self.start_utc).total_seconds() / 3600

    def state(self, now: datetime) -> str:
        if now >= self.end:
            return "over"
        if now >= self.start:
            return "in progress"
        return "notice due" if now >= self.notice_due else "scheduled"

    def table(self, now: datetime) -> pd.DataFrame:
        """The window in local time and UTC, as the report shows it."""
        rows = [("window starts", self.start, self.start_utc), ("window ends", self.end, self.end_utc),
                ("notice due by", self.notice_due.astimezone(self.start.tzinfo), self.notice_due),
                ("now", now.astimezone(self.start.tzinfo), now.astimezone(timezone.utc))]
        return pd.DataFrame([{"": what, "local": local_text(local), "UTC": utc_text(utc)} for what, local, utc in rows])


def local_text(moment: datetime) -> str:
    """2026-12-06 02:00 EST (Sun)"""
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()} ({moment:%a})"


def utc_text(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def clock(now: str = "") -> datetime:
    """The run's clock: `now` (ISO 8601 with a UTC offset; the runner checked it already) or the current time."""
    return parse_timestamp(now) if now.strip() else datetime.now(timezone.utc)


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))


def _local(day: date, at: time, zone: ZoneInfo) -> tuple[datetime, str]:
    """The wall-clock time `at` on `day` in `zone` as an aware datetime; a time in the spring-forward gap becomes
    the first moment after the gap, an ambiguous one its first occurrence. Also what happened, in words."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive:     # does not exist
        # fold=0 reads it with the offset before the gap: the same instant is the wall time after the gap
        after = first.astimezone(timezone.utc).astimezone(zone)
        return after, (f"{at:%H:%M} does not exist on {day} in {zone.key} (clocks jump forward): "
                       f"starts at {after:%H:%M} {after.tzname()}")
    if naive.replace(tzinfo=zone, fold=1).utcoffset() != first.utcoffset():
        return first, (f"{at:%H:%M} occurs twice on {day} in {zone.key} (clocks fall back): "
                       f"the first, {first:%H:%M} {first.tzname()}")
    return first, ""


def window_in(year: int, month: int, schedule: Schedule) -> Window:
    """The window of that month."""
    day = nth_weekday(year, month, schedule.weekday, schedule.nth)
    start, note = _local(day, schedule.start, schedule.zone)
    end_wall = datetime.combine(day, schedule.start) + timedelta(minutes=schedule.duration_minutes)
    end, end_note = _local(end_wall.date(), end_wall.time(), schedule.zone)
    if end <= start:        # only when the whole window fell into the gap: keep its length from the new start
        end = (start.astimezone(timezone.utc) + timedelta(minutes=schedule.duration_minutes)).astimezone(schedule.zone)
    notice = (start.astimezone(timezone.utc) - timedelta(hours=schedule.notice_hours))
    return Window(start, end, notice, "; ".join(n for n in (note, end_note) if n))


def _months_from(year: int, month: int, step: int):
    while True:
        yield year, month
        month += step
        if month == 13:
            year, month = year + 1, 1
        elif month == 0:
            year, month = year - 1, 12


def next_window(now: datetime, schedule: Schedule) -> Window:
    """The window in progress at `now`, else the next one to start (a window ending exactly at `now` is over)."""
    local = now.astimezone(schedule.zone)
    for year, month in _months_from(local.year, local.month, 1):
        window = window_in(year, month, schedule)
        if window.end > now:
            return window
    raise AssertionError("unreachable")


def last_window(now: datetime, schedule: Schedule) -> Window:
    """The window in progress at `now`, else the latest that has started (what post-checks follow)."""
    local = now.astimezone(schedule.zone)
    for year, month in _months_from(local.year, local.month, -1):
        window = window_in(year, month, schedule)
        if window.start <= now:
            return window
    raise AssertionError("unreachable")


def window_of(phase: str, now: datetime, schedule: Schedule) -> Window:
    """The window a run is about: before it (`phase` pre) the one in progress or the next to start, the one to
    prepare and announce; after it (post) the one in progress or the latest that started, the one to check."""
    return next_window(now, schedule) if phase == PRE else last_window(now, schedule)


# -- what the pre-checks read --------------------------------------------------------------------------------


def pending_migrations(rb: Runbook) -> tuple[list[LocalMigration], str | None]:
    """The migrations the window would apply, in order (the migrations runbook's library: local files not in the
    database's history); or why they could not be listed."""
    from .sources import migrations
    local, ignored, problem = migrations.read_local(migrations.folder_of(rb.env))
    if problem:
        return [], problem
    history = migrations.history(rb)
    if history.attrs.get("error"):
        return [], f"the migration history could not be read: {history.attrs['error']}"
    return migrations.pending_of(local, migrations.states(local, history, ignored)), None


def earlier_verification(where: Path | str, meta: dict[str, Any], env: str) -> dict[str, Any] | None:
    """database-backup's newest verdict in the archive on this backup (its BACKUP_VERIFIED or BACKUP_VERIFY_FAILED
    finding, with `run_id`, `started_at` and `report`), from the last BACKUP_RUNS runs of it against `env`; None when
    none judged it. A backup verified then whose file's SHA-256 is no longer its metadata's is BACKUP_VERIFY_FAILED."""
    from .runner.archive import report_folder
    from .runner.catalog import at, runs_newest_first
    from .sources.backups import check_file
    archive = at(where)
    name, seen = Path(meta["path"]).name, 0
    for run in runs_newest_first(archive, raw_filter=lambda line: '"database-backup"' not in line):
        if run.get("runbook") != "database-backup" or run.get("env") != env:
            continue
        seen += 1
        if seen > BACKUP_RUNS:
            break
        rel = report_folder(archive, run)   # a hand-edited report_dir never leads outside the archive
        try:
            verdict = json.loads(archive.read(f"{rel}/verdict.json")) if rel else {}
        except (OSError, ValueError):
            continue
        for finding in verdict.get("findings", []) if isinstance(verdict, dict) else []:
            if (finding.get("code") in ("BACKUP_VERIFIED", "BACKUP_VERIFY_FAILED")
                    and (finding.get("evidence") or {}).get("backup") == name):
                found = {"code": finding["code"], "title": str(finding.get("title", "")), "run_id": run.get("run_id"),
                         "started_at": run.get("started_at"), "report": run.get("report_dir")}
                if found["code"] == "BACKUP_VERIFIED" and (damaged := check_file(meta)):
                    found |= {"code": "BACKUP_VERIFY_FAILED", "title": f"verified then, changed since: {damaged}"}
                return found
    return None


def incident_runs(where: Path | str, now: datetime | None = None, exclude: str = "",
                  hours: float = INCIDENT_HOURS) -> pd.DataFrame:
    """Runs filed with an incident id in the `hours` before `now` (default: the current time) in the archive (a
    folder or an s3:// prefix), the latest per incident and runbook, with `open` when its status is not OK.
    `exclude` leaves out a runbook (this one)."""
    from .runner.catalog import at, runs_newest_first
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(hours=hours)
    rows = []
    for run in runs_newest_first(at(where), since, raw_filter=lambda line: '"incident": null' in line):
        if not isinstance(run, dict):
            continue
        try:
            started = datetime.fromisoformat(str(run.get("started_at")))
        except ValueError:
            continue
        started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)    # the runner writes UTC
        if run.get("incident") and run.get("runbook") != exclude and since <= started <= now:
            rows.append({"incident": str(run["incident"]), "runbook": str(run.get("runbook")), "started_at": started,
                         "status": str(run.get("status")), "summary": str(run.get("summary") or "")[:160],
                         "report": str(run.get("report_dir") or "")})
    columns = ["incident", "runbook", "started_at", "status", "open", "summary", "report"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values("started_at").groupby(["incident", "runbook"], as_index=False).last()
    frame["open"] = frame["status"] != "OK"
    return frame[columns].sort_values(["open", "started_at"], ascending=[False, False], ignore_index=True)


# -- notification drafts -------------------------------------------------------------------------------------


def customer_notice(window: Window, product: str = "the AIAS Platform") -> str:
    """The customer notice for `window` (markdown): when in local time and UTC, how long, what to expect. Nothing
    internal: no host names, no migration names, no secrets."""
    hours = window.hours
    length = f"{hours:g} hour{'s' if hours != 1 else ''}"
    shorter = (f" (daylight saving time starts that night, so the window is {length} on the clock)"
               if "does not exist" in window.note else "")
    return "\n".join([
        f"**Subject: Scheduled maintenance on {window.start:%A, %B %-d, %Y}**",
        "",
        f"We will carry out scheduled maintenance of {product} on **{window.start:%A, %B %-d, %Y}** from "
        f"**{window.start:%H:%M} to {window.end:%H:%M} {window.end.tzname()}** (Eastern Time){shorter}, that is "
        f"{utc_text(window.start_utc)} to {utc_text(window.end_utc)}.",
        "",
        "- **Expected impact:** the dashboard and the API may be unavailable or slow for short periods during the "
        "window; requests made then may fail and can be retried afterwards.",
        f"- **Duration:** up to {length}; we will post an update on the status page when it is complete.",
        "- **What you need to do:** nothing.",
        "",
        "Thank you for your patience. Questions: reply to this email or contact support.",
    ])


def all_clear(window: Window, product: str = "the AIAS Platform") -> str:
    """The all-clear message after `window` (markdown)."""
    return "\n".join([
        f"**Subject: Scheduled maintenance complete ({window.start:%B %-d, %Y})**",
        "",
        f"The scheduled maintenance of {product} on {window.start:%A, %B %-d, %Y} "
        f"({window.start:%H:%M}-{window.end:%H:%M} {window.end.tzname()}, {utc_text(window.start_utc)} to "
        f"{utc_text(window.end_utc)}) is complete. All services are operating normally.",
        "",
        "If something does not work as before, please reply to this email or contact support.",
    ])


def draft(phase: str, window: Window, status: Severity) -> str:
    """The message to send (markdown): before the window the customer notice; after it the all-clear, only when the
    run's verdict (`status`) is OK, else the line saying there is none yet (an all-clear sent while the platform is
    not back is worse than none)."""
    if phase == PRE:
        return customer_notice(window)
    return all_clear(window) if status is Severity.OK else NO_ALL_CLEAR
