"""Guarded action: restore a backup into the target database (pg_restore --clean --if-exists --single-transaction).

The plan (dry run) names the target as `host:port/database` of the profile's backup_database_url and lists every
table of the backup with its rows now (read-only) and in the backup: what would be replaced. Apply needs
apply=True, an operator, and `confirm_target` equal to that name (the target named twice), and a dump whose
SHA-256 is still its metadata's; anything else is RESTORE_REFUSED with nothing changed, and audited (one refused
record with the reason). The restore is one transaction: all of it or none. Audited in output/audit.jsonl (started
before pg_restore runs, finished with its outcome, also when it fails or is interrupted); afterwards the target's
tables are read again against the backup.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..checks import backups as checks
from ..errors import first_line
from ..runbook import Runbook
from ..sources import backups
from . import approvals, audit

ACTION = "restore_database"
# What an approval approves (approvals.plan_hash): which database is replaced by which backup file, by its digest.
IDENTITY = ["target", "backup", "sha256"]
INTERRUPTED = "interrupted: outcome unknown (pg_restore's transaction commits whole or not at all: read the tables)"


def application(rb: Runbook) -> str:
    return f"aias-runbooks/{rb.slug}/{rb.run_id}"


def plan(rb: Runbook, meta: dict[str, Any] | None) -> pd.DataFrame:
    """The backup's tables with their rows in the backup and, estimated from statistics, now in the target
    (read-only, no table read); attrs["target"]."""
    columns = ["table", "rows_in_backup", "rows_here", "state"]
    dsn = rb.env.secret("backup_database_url")
    if meta is None or dsn is None:
        frame = pd.DataFrame(columns=columns)
        frame.attrs.update(target="", error="no backup to restore" if meta is None else
                           rb.env.missing_secret_message("backup_database_url"))
        return frame
    try:
        target = backups.target_of(dsn)
        now = backups.read_estimates(dsn, list(meta["schemas"]), application(rb))
    except Exception as exc:  # noqa: BLE001 - an unreadable target is said in the plan, not a crash
        frame = pd.DataFrame(columns=columns)
        frame.attrs.update(target="", error=f"the target cannot be read: {first_line(exc)}")
        return frame
    frame = backups.replaced(meta["tables"], now)
    frame.attrs.update(target=target, backup=Path(meta["path"]).name)
    return frame


def _identity(target: str, meta: dict[str, Any] | None, targets: pd.DataFrame) -> list[dict[str, Any]]:
    """The restore as an approval holds it: one target, the database, replaced by this backup file (its SHA-256)."""
    return [{"target": target, "backup": Path(meta["path"]).name if meta else None,
             "sha256": meta.get("sha256") if meta else None, "tables": len(targets)}]


def _refuse(rb: Runbook, operator: str, reason: str, target: str, meta: dict[str, Any] | None) -> None:
    """RESTORE_REFUSED, and the refused apply audited with its reason: nothing was changed."""
    rb.record(checks.refused(reason, target))
    audit.declined(rb, ACTION, operator, audit.REFUSED, reason, target=target,
                   backup=Path(meta["path"]).name if meta else None)


def run(rb: Runbook, targets: pd.DataFrame, meta: dict[str, Any] | None, apply: bool, operator: str,
        confirm_target: str, approval: str = "") -> pd.DataFrame:
    """Dry run: the plan, marked (an approval request filed when the profile requires one). Apply: refused
    (RESTORE_REFUSED) unless operator, confirm_target and the file's SHA-256 are right and approvals.gate lets it
    (`approval`: the approved request's id); else pg_restore into the target, audited, then BACKUP_RESTORED or
    RESTORE_FAILED."""
    target = targets.attrs.get("target", "")
    if targets.attrs.get("error"):
        if apply:
            _refuse(rb, operator, targets.attrs["error"], target, meta)
        return targets
    if not apply:
        approvals.gate(rb, ACTION, _identity(target, meta, targets), False, operator, approval, identity=IDENTITY)
        return targets.assign(action=f"dry run: would replace with the backup's rows (confirm_target={target})")
    reason = ("apply=True needs the operator's name (the `operator` parameter) for the audit record"
              if not operator.strip() else
              f"confirm_target must repeat the target exactly as the dry run shows it ({target}); "
              f"got {confirm_target!r}" if confirm_target.strip() != target else backups.check_file(meta))
    if reason:
        _refuse(rb, operator, reason, target, meta)
        return targets.assign(action="refused: nothing changed")
    tools, looked = backups.find_tools()
    if tools is None:
        _refuse(rb, operator, "pg_restore was not found (looked in " + ", ".join(looked) + ")", target, meta)
        return targets.assign(action="refused: nothing changed")
    allowed = approvals.gate(rb, ACTION, _identity(target, meta, targets), True, operator, approval,
                             identity=IDENTITY)
    if not allowed.allowed:
        rb.record(checks.refused(allowed.reason, target))
        return targets.assign(action="refused: nothing changed")
    name = Path(meta["path"]).name
    result = targets.assign(action=INTERRUPTED)
    outcome = backups.Outcome(name)
    linked = {"request": allowed.request} if allowed.request else {}
    fields = linked | {"target": target, "backup": name, "sha256": meta["sha256"],
                       "backup_created_at": meta["created_at"],
                       "tables": [{"table": r.table, "rows_now": r.rows_here, "rows_in_backup": r.rows_in_backup}
                                  for r in targets.itertuples(index=False)]}

    done: dict[str, Any] = {"outcome": INTERRUPTED}

    def finished() -> dict:
        return linked | {"target": target, "backup": name, "outcome": done["outcome"], "seconds": outcome.seconds}

    started = time.monotonic()
    with audit.attempt(rb, ACTION, operator, fields, finished) as path:
        outcome.failed = backups.restore(tools, rb.env.secret("backup_database_url"), Path(meta["path"]),
                                         application(rb), clean=True)
        outcome.seconds = round(time.monotonic() - started, 2)
        done["outcome"] = f"failed: {outcome.failed}" if outcome.failed else "restored"
        result["action"] = "failed: rolled back, nothing changed" if outcome.failed else "replaced"
    result.attrs["audit"] = str(path)
    if not outcome.failed:
        try:
            after = backups.read_checksums(rb.env.secret("backup_database_url"), list(meta["schemas"]),
                                           application(rb))
        except Exception as exc:  # noqa: BLE001 - the restore is done; only the reading back failed
            outcome.details["unread"] = first_line(exc)
            rb.record(checks.restored(outcome, target))
            return result
        outcome.tables = backups.compare(meta["tables"], after)
        result = result.drop(columns=["rows_here", "state"]).merge(
            outcome.tables.rename(columns={"rows_here": "rows_after", "state": "after"})[
                ["table", "rows_after", "after"]], on="table", how="left")
    rb.record(checks.restored(outcome, target))
    return result
