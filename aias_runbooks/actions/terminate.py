"""Guarded action: terminate leaked sessions (idle in transaction) and, when asked, idle root blockers.

Dry run unless apply; every attempt is audited. Two kinds of target (column `target`):
- a leaked session: idle in transaction for longer than min_idle_s;
- with root_blockers=True, an idle root blocker, as the lock check (checks.connections.blocking) blames one: a
  session that is idle (in a transaction or not, e.g. holding a session-level advisory lock), waits on nothing and
  blocks another session, either for longer than min_blocked_s or, idle for min_holder_idle_s or more, at all
  (waiting will not release its lock, however young the queue). pg_cancel_backend does nothing to an idle
  session, so ending it is what frees the lock. An active root
  blocker is never a target (cancelling its statement is the advice), nor is this runbook's own session.

Only the sessions listed in the plan are touched, one statement per session, and each only if that same
statement finds it unchanged since the plan: the same session (pid + backend_start), in the same transaction
(xact_start), nothing run since (state_change), of the named application when one was given, and still meeting
its kind's criterion (a leak: idle in transaction longer than min_idle_s; a root blocker: still idle, still
blocking a session as above). See sql/terminate_backends.sql.

Apply writes two records to output/audit.jsonl, sharing an `attempt` id: `phase: started` (operator, criteria,
every planned target) before the first signal, and `phase: finished` (each target's outcome) afterwards, also
when a target fails or the run is interrupted. A run killed between the two still leaves the started record. An
apply with no target (a no-op) or that cannot reach the database (refused) writes one record with the reason.

Four-eyes and blast radius (approvals.gate): under a profile that requires approval for this action a dry run files
an approval request for the plan; the apply names it (`approval`), re-plans, and terminates only if that request is
approved by someone else, unexpired, and the plan's identity (IDENTITY) is the same; the started and finished
records then carry `request: <id>`. Over the action's limits (params/thresholds.yaml guarded_actions) the apply is
refused, whatever the profile.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.exc import DBAPIError

from ..runbook import Runbook
from ..sources import database
from . import approvals
from . import audit as audit_log

ACTION = "terminate_leaked_sessions"
TERMINATED = "terminated"
PLANNED = "planned: about to terminate"
# What each target's outcome is called in the result table and the audit: exactly one of these prefixes.
SKIPPED = "skipped: changed since the plan: "
FAILED = "failed: "
NOT_ATTEMPTED = "not attempted: "
INTERRUPTED = "interrupted: outcome unknown"
# Identity and state of a target, as the plan read them; the terminate statement compares them exactly.
SESSION_KEYS = ["pid", "backend_start", "xact_start", "state_change"]
AUDIT_COLUMNS = ["pid", "target", "role", "application", "client", "state", "idle_s", "transaction_s",
                 "backend_start", "xact_start", "state_change", "action"]
# What makes a target the same target for an approval (approvals.plan_hash): the session, its transaction, its kind.
IDENTITY = ["pid", "backend_start", "xact_start", "target"]
LEAK, ROOT_BLOCKER = "leaked session", "idle root blocker"    # the `target` column: what made a session a target


def plan(rb: Runbook, min_idle_s: int, application: str = "", root_blockers: bool = False,
         min_blocked_s: float | None = None, min_holder_idle_s: float | None = None) -> pd.DataFrame:
    """The sessions the action would terminate: idle in transaction longer than min_idle_s and, with
    root_blockers, idle root blockers that have blocked a session for longer than min_blocked_s or that have
    been idle min_holder_idle_s and block any (the thresholds' blocked_warning_s and idle_holder_grace_s)."""
    criteria: dict[str, Any] = {"min_idle_s": min_idle_s, "application": application or None}
    frame = rb.query("idle_in_transaction", min_idle_s=min_idle_s, application=application or None)
    error = frame.attrs.get("error")
    frame = frame.assign(target=LEAK)
    if root_blockers:
        if min_blocked_s is None or min_holder_idle_s is None:
            raise ValueError("root_blockers=True needs min_blocked_s and min_holder_idle_s (the thresholds' "
                             "blocked_warning_s and idle_holder_grace_s)")
        criteria |= {"root_blockers": True, "min_blocked_s": min_blocked_s, "min_holder_idle_s": min_holder_idle_s}
        blockers = rb.query("idle_root_blockers", min_blocked_s=min_blocked_s, min_holder_idle_s=min_holder_idle_s,
                            application=application or None)
        error = error or blockers.attrs.get("error")
        if not blockers.empty and "pid" in frame.columns:    # a leak that also blocks is listed once, as a leak
            blockers = blockers[~blockers["pid"].isin(frame["pid"])]
        if not blockers.empty:
            frame = pd.concat([frame, blockers.assign(target=ROOT_BLOCKER)], ignore_index=True)
    if error:
        frame.attrs["error"] = error
    frame.attrs["criteria"] = criteria
    return frame


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str, approval: str = "") -> pd.DataFrame:
    """Dry run: the plan, marked (and, when the profile requires approval, an approval request filed). Apply:
    terminates those sessions that are unchanged since the plan, once approvals.gate lets it (`approval`: the
    approved request's id).

    Returns the targets with `terminated` (bool) and `action` (terminated / skipped: ... / failed: <server
    message> / not attempted: refused: ...). A target that fails does not stop the others and does not raise; see
    the module docstring for the audit records.
    """
    if not apply:
        if targets.empty:
            return targets
        filed = approvals.gate(rb, ACTION, plan_records(targets), False, operator, approval, identity=IDENTITY)
        note = f" (approval request {filed.request})" if filed.request else ""
        return targets.assign(action="dry run: would terminate" + note)
    audit_log.require_operator(operator)
    criteria = targets.attrs.get("criteria")
    gated = bool(approval.strip()) or rb.env.requires_approval(ACTION)
    if targets.empty and (targets.attrs.get("error") or not gated):
        error = targets.attrs.get("error")
        audit_log.declined(rb, ACTION, operator, audit_log.REFUSED if error else audit_log.NO_OP,
                           f"the sessions could not be listed: {error}" if error else
                           "no session meets the criteria (a leak, or an idle root blocker when asked for)",
                           criteria=criteria)
        return targets
    missing = [key for key in SESSION_KEYS if key not in targets.columns]
    if not targets.empty and (not criteria or missing):
        raise ValueError("apply needs the targets exactly as terminate.plan(...) returned them "
                         f"(criteria and the columns {', '.join(SESSION_KEYS)}); nothing was terminated")
    conn = rb.connection()
    if conn is None:
        audit_log.declined(rb, ACTION, operator, audit_log.REFUSED, "the database is not reachable",
                           criteria=criteria)
        return targets.assign(terminated=False, action=NOT_ATTEMPTED + "the database is not reachable")
    allowed = approvals.gate(rb, ACTION, plan_records(targets), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return targets.assign(terminated=False, action=NOT_ATTEMPTED + "refused: " + allowed.reason)
    if targets.empty:
        return targets

    result = targets.assign(terminated=False, action=PLANNED)
    attempt = uuid.uuid4().hex
    done_col, action_col = result.columns.get_loc("terminated"), result.columns.get_loc("action")
    linked = {"request": allowed.request} if allowed.request else {}
    path = audit(rb, operator, criteria, result, attempt=attempt, phase="started", **linked)
    try:
        for i, row in enumerate(targets.itertuples(index=False)):
            result.iloc[i, action_col] = INTERRUPTED       # what stays if we never come back from this one
            done, action = _terminate(conn, row, criteria)
            result.iloc[i, done_col], result.iloc[i, action_col] = done, action
    finally:
        # Written however the loop ends (a failed target does not end it; an interrupt or a crash does).
        result["action"] = result["action"].replace(PLANNED, NOT_ATTEMPTED + "interrupted")
        audit(rb, operator, criteria, result, attempt=attempt, phase="finished", **linked)
    result.attrs["audit"] = str(path)
    return result


def _terminate(conn, row: Any, criteria: dict[str, Any]) -> tuple[bool, str]:
    """Re-check and terminate one target in one statement: (terminated, what happened)."""
    kind = "root_blocker" if getattr(row, "target", LEAK) == ROOT_BLOCKER else "leak"
    if kind == "root_blocker" and not criteria.get("root_blockers"):
        return False, NOT_ATTEMPTED + "root blockers were not asked for (terminate_root_blockers)"
    try:
        done = database.query(conn, "terminate_backends", pid=int(row.pid), kind=kind,
                              backend_start=_exact(row.backend_start), xact_start=_exact(row.xact_start),
                              state_change=_exact(row.state_change), min_idle_s=criteria.get("min_idle_s") or 0,
                              min_blocked_s=criteria.get("min_blocked_s") or 0,
                              min_holder_idle_s=criteria.get("min_holder_idle_s") or 0,
                              application=criteria.get("application"))
    except DBAPIError as exc:
        return False, FAILED + _server_message(exc)
    if done.empty:
        return False, SKIPPED + "the session has ended"
    changed, terminated = done.iloc[0]["changed"], bool(done.iloc[0]["terminated"])
    if isinstance(changed, str):
        return False, SKIPPED + changed
    if not terminated:
        return False, FAILED + "pg_terminate_backend returned false (the session may have just ended)"
    return True, TERMINATED


def _exact(value: Any) -> datetime | None:
    """The timestamp as the server sent it (a Python datetime, microseconds intact), for an exact comparison."""
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _server_message(exc: DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or (str(exc.orig).strip().splitlines() or [""])[0]
    detail = getattr(diag, "message_detail", None)
    return f"{primary} ({detail})" if detail else primary


def plan_records(targets: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The targets as JSON-safe records of `columns` (default: IDENTITY first, then the audit's), timestamps in
    ISO form: what an approval request holds and its plan hash is computed from."""
    columns = columns or [*IDENTITY, *(c for c in AUDIT_COLUMNS if c not in IDENTITY and c != "action")]
    table = targets.reindex(columns=columns)
    for column in ("backend_start", "xact_start", "state_change"):
        if column in table.columns:
            table[column] = [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in table[column]]
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in table.to_dict(orient="records")]


def audit(rb: Runbook, operator: str, criteria: dict[str, Any], result: pd.DataFrame, attempt: str,
          phase: str, **linked: Any) -> Path:
    """Append who, when, what and (phase finished) the outcome per target to output/audit.jsonl; returns its path.
    `linked`: the approval request the apply runs under (`request`), when there is one.

    Untrusted text (application_name, client address) only ever goes into this JSON, never into a message.
    """
    records = plan_records(result, AUDIT_COLUMNS)
    return audit_log.append(rb, ACTION, attempt, phase, operator, **linked, criteria=criteria, targets=records,
                            terminated=int(result["terminated"].sum()),
                            failed=int(result["action"].str.startswith(FAILED).sum()),
                            skipped=int(result["action"].str.startswith(SKIPPED).sum()))


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
