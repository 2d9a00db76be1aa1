"""Backup Database: is there a recent backup, does it restore to what it says it holds, did a restore work."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from ..sources.backups import Outcome

EXAMPLES = 10


def not_configured(problem: str) -> Finding:
    return Finding("BACKUP_NOT_CONFIGURED", Severity.UNKNOWN, f"Backups cannot be checked: {problem}", {},
                   ["Name the backup folder (`backups: {folder: ...}`) and the secrets backup_database_url and "
                    "scratch_database_url in the environment profile."])


def created(outcome: Outcome) -> Finding:
    """BACKUP_CREATED, or BACKUP_FAILED (CRITICAL: the backup asked for does not exist), or BACKUP_NOT_CONFIGURED /
    BACKUP_TOOLS_MISSING when it could not be attempted."""
    if outcome.problem:
        return _cannot(outcome, "No backup was made")
    if outcome.failed:
        return Finding("BACKUP_FAILED", Severity.CRITICAL, f"The backup failed: {outcome.failed}",
                       {"backup": outcome.backup, "seconds": outcome.seconds},
                       ["Read pg_dump's message above: a full disk, a lock wait (DDL running) or a refused login are "
                        "the usual causes.", "Run the backup again once it is fixed: until then the newest backup is "
                                             "the one listed in section 2."])
    meta = outcome.metadata
    return Finding("BACKUP_CREATED", Severity.OK,
                   f"Backup {outcome.backup} written in {outcome.seconds:.1f} s: {meta['size_bytes'] / 1e6:.1f} MB, "
                   f"{len(meta['tables'])} tables, {sum(t['rows'] for t in meta['tables'].values()):,} rows.",
                   {"backup": outcome.backup, "seconds": outcome.seconds, "sha256": meta["sha256"],
                    "server_version": meta["server_version"], "schemas": ", ".join(meta["schemas"])})


def freshness(backups: pd.DataFrame, thresholds: dict[str, Any]) -> Finding:
    """BACKUP_STALE: the newest complete backup is older than backups.max_age_hours (WARNING), older than
    backups.critical_age_hours or there is none (CRITICAL); BACKUP_OK otherwise."""
    if backups.attrs.get("error"):
        return not_configured(backups.attrs["error"])
    rule = thresholds["backups"]
    complete = backups[backups["complete"].astype(bool)] if len(backups) else backups
    evidence: dict[str, Any] = {"folder": backups.attrs.get("folder", ""), "backups": len(complete),
                                "max_age_hours": rule["max_age_hours"]}
    steps = ["Take a backup now: run this runbook with create=true.",
             "Find out why the scheduled backup stopped (its job's log, the disk of the backup folder)."]
    if complete.empty:
        return Finding("BACKUP_STALE", Severity.CRITICAL, "There is no backup at all: nothing to restore from.",
                       evidence, steps, [age_measure(None, rule)])
    newest = complete.iloc[0]
    age = float(newest["age_hours"])
    measured = [age_measure(age, rule)]
    evidence |= {"newest": newest["backup"], "newest_age_hours": age}
    if age <= rule["max_age_hours"]:
        return Finding("BACKUP_OK", Severity.OK, f"The newest backup, {newest['backup']}, is {age:.1f} h old "
                       f"(limit {rule['max_age_hours']} h); {len(complete)} backup(s) in the folder.", evidence,
                       measures=measured)
    severity = Severity.CRITICAL if age > rule["critical_age_hours"] else Severity.WARNING
    return Finding("BACKUP_STALE", severity, f"The newest backup, {newest['backup']}, is {age:.1f} h old: over "
                   f"{rule['max_age_hours']} h" + (f" and over {rule['critical_age_hours']} h" if
                                                  severity == Severity.CRITICAL else "") + ".", evidence, steps,
                   measured)


def age_measure(hours: float | None, rule: dict[str, Any]) -> Measure:
    """The newest complete backup's age (None: there is none, or it is unknown) against max_age_hours and
    critical_age_hours."""
    return Measure("newest_age", hours, "h", rule["max_age_hours"], rule["critical_age_hours"], 0)


def verified(outcome: Outcome) -> Finding:
    """BACKUP_VERIFIED: the file's SHA-256 is the metadata's and a restore into the scratch database holds every
    table with its rows and checksum; BACKUP_VERIFY_FAILED (CRITICAL) naming what differs; BACKUP_NOT_VERIFIED
    (UNKNOWN) when it could not be tried."""
    if outcome.problem:
        return _cannot(outcome, "The backup was not verified")
    evidence: dict[str, Any] = {"backup": outcome.backup, **outcome.details}
    steps = ["Do not rely on this backup: take a new one (create=true) and verify it.",
             "Keep the damaged file for the postmortem; check the backup folder's disk and who can write to it."]
    if outcome.failed:
        said = "its file is not what was written" if outcome.details.get("check") == "sha256" else "it does not restore"
        return Finding("BACKUP_VERIFY_FAILED", Severity.CRITICAL, f"Backup {outcome.backup} failed verification: "
                       f"{said}: {outcome.failed}", evidence, steps)
    tables = outcome.tables if outcome.tables is not None else pd.DataFrame(columns=["table", "state"])
    bad = tables[tables["state"] != "equal"]
    evidence |= {"tables": len(tables), "seconds": outcome.seconds}
    if len(bad):
        evidence["differing"] = {r.table: f"{r.state}: {r.rows_in_backup} rows in the backup, {r.rows_here} restored"
                                 for r in bad.head(EXAMPLES).itertuples(index=False)}
        return Finding("BACKUP_VERIFY_FAILED", Severity.CRITICAL, f"Backup {outcome.backup} restores, but "
                       f"{len(bad)} of {len(tables)} tables differ from its metadata: "
                       f"{', '.join(bad['table'].head(EXAMPLES))}.", evidence, steps)
    return Finding("BACKUP_VERIFIED", Severity.OK, f"Backup {outcome.backup} is intact (SHA-256) and restores: all "
                   f"{len(tables)} tables hold the rows and checksums of its metadata ({outcome.seconds:.1f} s, "
                   f"scratch database {outcome.details.get('scratch')}).", evidence)


def _cannot(outcome: Outcome, said: str) -> Finding:
    if "missing" in outcome.details:
        return Finding("BACKUP_TOOLS_MISSING", Severity.UNKNOWN, f"{said}: {outcome.problem}.", {},
                       ["Install the PostgreSQL client tools of the server's major version or newer "
                        "(postgresql-client), or set AIAS_PG_BINDIR to the folder holding pg_dump and pg_restore."])
    code = "BACKUP_NOT_VERIFIED" if "verified" in said else "BACKUP_NOT_CONFIGURED"
    return Finding(code, Severity.UNKNOWN, f"{said}: {outcome.problem}.", {"backup": outcome.backup} if
                   outcome.backup else {}, ["Set what is missing in the environment profile, then run it again."])


def restored(outcome: Outcome, target: str) -> Finding:
    """After an applied restore: BACKUP_RESTORED (the target's tables read again against the backup), RESTORE_FAILED
    (CRITICAL: pg_restore refused, its single transaction rolled back, the target is as it was)."""
    evidence: dict[str, Any] = {"backup": outcome.backup, "target": target, "seconds": outcome.seconds}
    if outcome.failed:
        return Finding("RESTORE_FAILED", Severity.CRITICAL, f"Restoring {outcome.backup} into {target} failed: "
                       f"{outcome.failed}", evidence,
                       ["The restore ran in one transaction: it rolled back and the target is as it was.",
                        "Fix the cause pg_restore names (a lock, a missing role, a disk) and run it again."])
    if outcome.tables is None:
        return Finding("BACKUP_RESTORED", Severity.OK, f"Restored {outcome.backup} into {target} in "
                       f"{outcome.seconds:.1f} s (pg_restore committed); its tables could not be read again: "
                       f"{outcome.details.get('unread', 'unknown')}.", evidence,
                       ["Run this runbook again (dry run) to compare the target's tables with the backup."])
    tables = outcome.tables
    equal = tables[tables["state"] == "equal"]
    since = tables[tables["state"] != "equal"]
    evidence |= {"tables_equal": len(equal), "tables": len(tables)}
    said = ""
    if len(since):
        evidence["changed_since"] = ", ".join(since["table"].head(EXAMPLES))
        said = (f"; {len(since)} were written to again right after it (the platform is running): "
                f"{evidence['changed_since']}")
    return Finding("BACKUP_RESTORED", Severity.OK, f"Restored {outcome.backup} into {target} in "
                   f"{outcome.seconds:.1f} s: {len(equal)} of {len(tables)} tables equal the backup{said}.", evidence,
                   ["Tell the team what was restored and from when: changes made after the backup are gone.",
                    "Re-run the diagnosis runbooks (database-health, stripe-webhook-failures) on the restored data."])


def refused(reason: str, target: str) -> Finding:
    return Finding("RESTORE_REFUSED", Severity.UNKNOWN, f"Restore refused, nothing was changed: {reason}.",
                   {"target": target}, ["Give operator and confirm_target exactly as the dry run shows the target."])
