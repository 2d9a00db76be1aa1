"""Maintenance Windows: is the notice out in time, and is the platform ready for the window (pre) or back to normal
after it (post)?

Pre-checks: MAINTENANCE_NOTICE_DUE (WARNING: the notice deadline has passed and the window has not started),
MAINTENANCE_BACKUP_MISSING (CRITICAL: no backup within backups.max_age_hours, none that can be confirmed, or the
newest does not restore), MAINTENANCE_BACKUP_UNVERIFIED (WARNING: a recent backup, not verified), the migrations the
window would apply (OK, listed), MAINTENANCE_OPEN_INCIDENT (WARNING: an incident's runs of the last 24 h did not end
OK, or a provider's status page reports one), and the go/no-go: MAINTENANCE_NOT_READY (CRITICAL) when any finding
recorded before it is CRITICAL, else MAINTENANCE_READY (OK, naming the warnings to weigh).
Post-checks reuse health-check's and high-error-rate's findings; MAINTENANCE_POST_OK when all of them are OK.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Severity
from ..maintenance import Schedule, Window, local_text, utc_text
from ..sources.backups import Outcome
from ..sources.migrations import LocalMigration
from . import backups as backup_checks
from . import migrations as migration_checks

EXAMPLES = 10


def window_evidence(window: Window) -> dict[str, Any]:
    evidence = {"window_start": local_text(window.start), "window_start_utc": utc_text(window.start_utc),
                "window_end": local_text(window.end), "window_end_utc": utc_text(window.end_utc),
                "hours": round(window.hours, 2), "notice_due_utc": utc_text(window.notice_due)}
    return evidence | ({"daylight_saving": window.note} if window.note else {})


def notice(window: Window, now: Any, schedule: Schedule) -> Finding:
    """MAINTENANCE_NOTICE_DUE (WARNING) from the notice deadline until the window starts: the notice must have gone
    out already; MAINTENANCE_NOTICE_OK with the deadline before it, and while the window is in progress."""
    evidence = window_evidence(window) | {"now_utc": utc_text(now), "notice_hours": schedule.notice_hours}
    when = f"{local_text(window.start)} ({utc_text(window.start_utc)})"
    state = window.state(now)
    if state == "notice due":
        left = (window.start_utc - now).total_seconds() / 3600
        return Finding("MAINTENANCE_NOTICE_DUE", Severity.WARNING,
                       f"The next window starts {when}, in {left:.1f} h: the {schedule.notice_hours:g}-hour notice was "
                       f"due by {utc_text(window.notice_due)}.", evidence,
                       ["Confirm the customer notice (section 6's draft) went out: status page and email.",
                        "If it did not, send it now and say the window is on shorter notice, or move the window "
                        "to next month."])
    if state == "in progress":
        return Finding("MAINTENANCE_NOTICE_OK", Severity.OK, f"The window is in progress: it started {when} and ends "
                       f"{local_text(window.end)} ({utc_text(window.end_utc)}).", evidence)
    return Finding("MAINTENANCE_NOTICE_OK", Severity.OK,
                   f"The next window starts {when}; send the customer notice by {utc_text(window.notice_due)} "
                   f"({local_text(window.notice_due.astimezone(window.start.tzinfo))}).", evidence)


def worth_verifying(verify: bool, newest: dict[str, Any] | None, earlier: dict[str, Any] | None,
                    listing: pd.DataFrame, thresholds: dict[str, Any]) -> bool:
    """Whether to restore the newest complete backup (`newest`, its metadata) into the scratch database now: asked
    (`verify`), there is one, no database-backup run in the archive judged it already (`earlier`, which backup()
    takes as the verdict), and it is within backups.max_age_hours (a stale one is MAINTENANCE_BACKUP_MISSING
    whatever it restores: the restore would only cost minutes before a no-go)."""
    return bool(verify and newest and not earlier
                and backup_checks.freshness(listing, thresholds).severity is Severity.OK)


def backup(listing: pd.DataFrame, outcome: Outcome | None, thresholds: dict[str, Any],
           earlier: dict[str, Any] | None = None) -> Finding:
    """MAINTENANCE_BACKUP_MISSING (CRITICAL) unless the newest complete backup is within backups.max_age_hours and
    restores intact, verified now (`outcome`) or by an earlier database-backup run (`earlier`, its finding);
    MAINTENANCE_BACKUP_UNVERIFIED (WARNING) when neither verified it; MAINTENANCE_BACKUP_OK otherwise."""
    fresh = backup_checks.freshness(listing, thresholds)
    found = _backup(listing, outcome, thresholds, earlier, fresh)
    # every MAINTENANCE_BACKUP_* carries the newest backup's age (unknown when the folder cannot be read)
    return found.measured(*(fresh.measures or [backup_checks.age_measure(None, thresholds["backups"])]))


def _backup(listing: pd.DataFrame, outcome: Outcome | None, thresholds: dict[str, Any],
            earlier: dict[str, Any] | None, fresh: Finding) -> Finding:
    limit = thresholds["backups"]["max_age_hours"]
    steps = ["Take a backup and verify it now: run database-backup with create=true.",
             "Do not start the window's changes until a recent backup restores."]
    evidence = dict(fresh.evidence)
    if fresh.code == "BACKUP_NOT_CONFIGURED":
        return Finding("MAINTENANCE_BACKUP_MISSING", Severity.CRITICAL,
                       f"No backup can be confirmed before the window: {listing.attrs.get('error')}.", evidence,
                       ["Name the backup folder in the environment profile (`backups: {folder: ...}`)", *steps])
    if fresh.severity is not Severity.OK:
        said = (f"the newest, {evidence['newest']}, is {evidence['newest_age_hours']:.1f} h old (over {limit} h)"
                if "newest" in evidence else "there is no backup at all")
        return Finding("MAINTENANCE_BACKUP_MISSING", Severity.CRITICAL,
                       f"No recent backup before the window: {said}.", evidence, steps)
    name = evidence["newest"]
    if outcome is None and earlier:
        evidence |= {"verification": earlier["code"], "verified_in_run": earlier["run_id"],
                     "verified_at": earlier["started_at"], "report": earlier["report"]}
        if earlier["code"] != "BACKUP_VERIFIED":
            return Finding("MAINTENANCE_BACKUP_MISSING", Severity.CRITICAL,
                           f"The newest backup, {name}, does not restore intact (database-backup run "
                           f"{earlier['run_id']}): {earlier['title']}", evidence, steps)
        return Finding("MAINTENANCE_BACKUP_OK", Severity.OK,
                       f"The newest backup, {name}, is {evidence['newest_age_hours']:.1f} h old (limit {limit} h); "
                       f"database-backup run {earlier['run_id']} restored it intact, and its SHA-256 is unchanged.",
                       evidence)
    if outcome is None:
        return Finding("MAINTENANCE_BACKUP_UNVERIFIED", Severity.WARNING,
                       f"The newest backup, {name}, is {evidence['newest_age_hours']:.1f} h old but was not verified "
                       "here (verify_backup=false).", evidence,
                       ["Verify it (database-backup, verify=true) before the window, or run this with "
                        "verify_backup=true."])
    checked = backup_checks.verified(outcome)
    evidence |= {"verification": checked.code} | {k: v for k, v in checked.evidence.items() if k != "backup"}
    if checked.severity is Severity.CRITICAL:
        return Finding("MAINTENANCE_BACKUP_MISSING", Severity.CRITICAL,
                       f"The newest backup, {name}, does not restore intact: {checked.title}", evidence, steps)
    if checked.severity is not Severity.OK:
        return Finding("MAINTENANCE_BACKUP_UNVERIFIED", Severity.WARNING,
                       f"The newest backup, {name}, is {evidence['newest_age_hours']:.1f} h old but could not be "
                       f"verified: {checked.title}", evidence, checked.next_steps)
    return Finding("MAINTENANCE_BACKUP_OK", Severity.OK,
                   f"The newest backup, {name}, is {evidence['newest_age_hours']:.1f} h old (limit {limit} h) and "
                   f"restores intact ({evidence.get('tables')} tables).", evidence)


def migrations(pending: list[LocalMigration], problem: str | None) -> Finding:
    """What the window would apply: MAINTENANCE_MIGRATIONS_PLANNED (OK, listed) or MAINTENANCE_NO_MIGRATIONS (OK);
    MIGRATIONS_NOT_CONFIGURED (UNKNOWN) when they cannot be listed."""
    if problem:
        return migration_checks.not_configured(problem)
    if not pending:
        return Finding("MAINTENANCE_NO_MIGRATIONS", Severity.OK, "No migration is pending: the window applies none.")
    listed = [f"{m.version} {m.name}" for m in pending[:EXAMPLES]]
    unparsed = [m.file for m in pending if m.error]
    more = f" (+{len(pending) - EXAMPLES} more)" if len(pending) > EXAMPLES else ""
    return Finding("MAINTENANCE_MIGRATIONS_PLANNED", Severity.OK,
                   f"{len(pending)} pending migration(s) would be applied in the window: {', '.join(listed)}{more}.",
                   {"pending": [m.version for m in pending], "statements": sum(len(m.statements) for m in pending)}
                   | ({"do_not_parse": unparsed} if unparsed else {}),
                   ["Before the window: run the migrations runbook (dependency check, dry run).",
                    "In the window: apply them with the migrations runbook (apply=true, your name), then run this "
                    "runbook with phase=post."])


def incidents(runs: pd.DataFrame, pages: pd.DataFrame) -> Finding:
    """MAINTENANCE_OPEN_INCIDENT (WARNING) when an incident's latest run of a runbook in the last 24 h did not end OK,
    or a provider's status page reports a problem (or cannot be read); MAINTENANCE_NO_OPEN_INCIDENT otherwise."""
    open_runs = runs[runs["open"].astype(bool)] if len(runs) else runs
    bad_pages = pages[pages["indicator"].fillna("unknown") != "none"] if len(pages) else pages
    evidence: dict[str, Any] = {"incident_runs_24h": len(runs), "status_pages": len(pages)}
    if open_runs.empty and bad_pages.empty:
        return Finding("MAINTENANCE_NO_OPEN_INCIDENT", Severity.OK,
                       f"No incident is open: {runs['incident'].nunique() if len(runs) else 0} incident(s) in the "
                       f"last 24 h ended OK, and every status page is green ({', '.join(pages['service'])}).",
                       evidence)
    parts = []
    if len(open_runs):
        evidence["open_incidents"] = {f"{r.incident} ({r.runbook})": f"{r.status} at {r.started_at:%Y-%m-%d %H:%M} "
                                      "UTC" for r in open_runs.head(EXAMPLES).itertuples(index=False)}
        parts.append(f"{open_runs['incident'].nunique()} incident(s) whose latest run did not end OK: "
                     + ", ".join(dict.fromkeys(open_runs["incident"])))
    if len(bad_pages):
        evidence["providers"] = {r.service: r.incidents or r.indicator or f"unreadable: {r.error}"
                                 for r in bad_pages.itertuples(index=False)}
        parts.append("status pages report a problem: " + ", ".join(bad_pages["service"]))
    return Finding("MAINTENANCE_OPEN_INCIDENT", Severity.WARNING, "; ".join(parts) + ".", evidence,
                   ["Resolve or hand over the open incident before the window: changes during an incident blur "
                    "both.", "A provider incident: wait for it to end, or move the window and tell customers."])


def readiness(findings: list[Finding]) -> Finding:
    """MAINTENANCE_NOT_READY (CRITICAL) naming each CRITICAL finding so far; else MAINTENANCE_READY (OK), naming the
    warnings and unknowns to weigh."""
    blocking = [f for f in findings if f.severity is Severity.CRITICAL]
    weigh = [f for f in findings if f.severity in (Severity.WARNING, Severity.UNKNOWN)]
    if blocking:
        return Finding("MAINTENANCE_NOT_READY", Severity.CRITICAL,
                       "No-go: " + "; ".join(f"{f.code}: {f.title}" for f in blocking[:EXAMPLES]),
                       {"blocking": [f.code for f in blocking], "to_weigh": [f.code for f in weigh]},
                       ["Fix what blocks (each finding's next steps), then run this runbook again.",
                        "If it cannot be fixed in time, postpone the window and tell customers."])
    said = f"; weigh first: {', '.join(f.code for f in weigh)}" if weigh else ""
    return Finding("MAINTENANCE_READY", Severity.OK, f"Go: no blocking problem before the window{said}.",
                   {"checks": [f.code for f in findings], "to_weigh": [f.code for f in weigh]})


POST_CHECKS = {"API_HEALTHY", "API_LATENCY_OK", "ERROR_RATE_OK"}


def post(findings: list[Finding], window: Window) -> list[Finding]:
    """MAINTENANCE_POST_OK when the health check and the error rate were judged and every finding of the run is OK
    (the failures are reported by their own codes: API_DOWN, ERROR_RATE_HIGH, DB_UNREACHABLE, ...)."""
    codes = {f.code for f in findings}
    if not codes >= POST_CHECKS or any(f.severity is not Severity.OK for f in findings):
        return []
    return [Finding("MAINTENANCE_POST_OK", Severity.OK,
                    f"After the window of {local_text(window.start)}: the API is healthy and the error rate is within "
                    f"target ({', '.join(f.code for f in findings)}).", window_evidence(window))]
