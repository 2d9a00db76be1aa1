"""The maintenance-window runbook's sections, one call each, so that its notebook keeps the narration only.

One notebook serves both phases: `phase=pre` before the window (notice, backup, migrations, incidents, go/no-go)
and `phase=post` after it (API health and error rate, all-clear). Each step reads what its phase needs, judges it
with checks/maintenance.py, records and shows the findings, and returns the table its section shows; a step of the
other phase prints one line saying so and records nothing. The schedule, the reads and the drafts are
maintenance.py's; the findings are checks/maintenance.py's.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from IPython.display import Markdown, display

from . import maintenance, paths
from .actions import restore
from .checks import errors, health
from .checks import maintenance as checks
from .maintenance import POST, PRE, Schedule, Window
from .runbook import FindingList, Runbook
from .sources import api, backups, status_pages


def _not_now(phase: str, said: str) -> None:
    print(f"phase={phase}: {said}")


def when(rb: Runbook, phase: str, window: Window, now: datetime, schedule: Schedule) -> pd.DataFrame:
    """Section 1: the schedule in one line, MAINTENANCE_NOTICE_DUE / _OK before the window (after it the notice is
    history), and the window in local time and UTC."""
    print(f"schedule: {schedule.describe()}; notice {schedule.notice_hours:g} h before"
          + (f"; {window.note}" if window.note else ""))
    if phase == PRE:
        display(rb.record(checks.notice(window, now, schedule)))
    return window.table(now)


def backup(rb: Runbook, phase: str, verify: bool) -> pd.DataFrame | None:
    """Section 2 (pre): the newest complete backup, verified by an earlier database-backup run or restored into the
    scratch database now (checks.worth_verifying decides), judged MAINTENANCE_BACKUP_OK / _UNVERIFIED / _MISSING;
    returns the five newest backups."""
    if phase != PRE:
        return _not_now(phase, "the backup was checked before the window")
    folder = backups.folder_of(rb.env)
    on_hand = backups.listing(folder)
    newest, _ = backups.chosen(folder)     # the newest complete backup, the one the listing's age is of
    earlier = maintenance.earlier_verification(paths.archive(), newest, rb.env.name) if newest else None
    checked = (backups.verify(rb.env, newest, restore.application(rb))
               if checks.worth_verifying(verify, newest, earlier, on_hand, rb.thresholds) else None)
    display(rb.record(checks.backup(on_hand, checked, rb.thresholds, earlier)))
    return on_hand.head(5)


def migrations(rb: Runbook, phase: str) -> None:
    """Section 3 (pre): the migrations the window would apply, listed (MAINTENANCE_MIGRATIONS_PLANNED or
    MAINTENANCE_NO_MIGRATIONS)."""
    if phase != PRE:
        return _not_now(phase, "see the migrations runbook for what was applied")
    pending, problem = maintenance.pending_migrations(rb)
    display(rb.record(checks.migrations(pending, problem)))
    return None


def incidents(rb: Runbook, phase: str) -> pd.DataFrame | None:
    """Section 4 (pre): incident runs of the last 24 h (read now, whatever the schedule's clock says) and the
    providers' status pages, judged MAINTENANCE_OPEN_INCIDENT or _NO_OPEN_INCIDENT; shows the runs, returns the
    pages."""
    if phase != PRE:
        return _not_now(phase, "not checked")
    runs = maintenance.incident_runs(paths.archive(), exclude=rb.slug)
    pages = status_pages.summary(status_pages.pages_of(rb.env.urls))
    display(rb.record(checks.incidents(runs, pages)))
    display(runs)
    return pages


def readiness(rb: Runbook, phase: str) -> FindingList | None:
    """Section 5 (pre): go or no-go from every finding recorded so far (MAINTENANCE_READY / _NOT_READY)."""
    if phase != PRE:
        return _not_now(phase, "see section 6")
    return rb.record(checks.readiness(rb.findings))


def after(rb: Runbook, phase: str, window: Window, samples: int, window_minutes: int) -> None:
    """Section 6 (post): health-check's availability and latency findings on `samples` requests to /api/healthz
    and high-error-rate's error rate over the last `window_minutes`, then MAINTENANCE_POST_OK when every finding of
    the run is OK (a lost database counts too)."""
    if phase != POST:
        return _not_now(phase, "run with phase=post after the window")
    probed = api.probe(rb.env.api_base_url, "/api/healthz", samples=samples, interval_ms=100, timeout_s=5.0)
    minutes = errors.per_minute(rb.query("error_rate_per_minute", window_minutes=window_minutes), rb.thresholds)
    display(rb.record(health.availability(probed, rb.thresholds) + health.latency(probed, rb.thresholds)
                      + errors.error_rate(minutes, rb.thresholds, window_minutes)))
    display(rb.record(checks.post(rb.findings, window)))
    return None


def message(rb: Runbook, phase: str, window: Window) -> Markdown:
    """Section 7: the message to send, as maintenance.draft() picks it from the phase and the verdict so far."""
    return Markdown(maintenance.draft(phase, window, rb.verdict().status))
