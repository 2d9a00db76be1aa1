"""Guarded action: retry failed or timed-out workflow executions through the app's /api/admin/executions/retry.

Dry run unless apply: the plan is the window's failed and timed-out executions that were never retried
(sql/retryable_executions.sql), each to be retried unless it already is attempt `workflows.retry_max_attempts` of its
original execution (each retry is the attempt after the one it retries): then the retries failed as often as the
first run, the cause persists, and another retry would only fail again; it is skipped, and the plan says so. Apply
(operator required) asks the endpoint to re-queue exactly the others; it skips any that was retried meanwhile (at
most one retry per execution), so a second apply retries nothing twice. The runbook itself never writes to the
database. Audited in output/audit.jsonl (started before the call, finished with each execution's outcome and the
ones skipped at the cap (`capped`) with why, also when the call fails or is interrupted; an apply with nothing to
retry, or refused, as one record with the reason).
"""

from __future__ import annotations

import pandas as pd

from ..runbook import Runbook
from ..sources.http import Unreachable, admin_post
from . import approvals, audit

ACTION = "retry_executions"
ENDPOINT = "/api/admin/executions/retry"
INTERRUPTED = "interrupted: outcome unknown (list the retryable executions again)"
CAPPED = "skipped: attempt {attempt} of at most {cap} failed: the cause persists, a retry would fail again"
IDENTITY = ["execution", "attempt"]   # what an approval approves (approvals.plan_hash): which executions, at which try
COUNTED = (("retried", "re-queued"), ("skipped", "skipped"), ("failed", "failed"))   # audit: outcomes by kind


def plan(rb: Runbook, window_minutes: int, limit: int = 200) -> pd.DataFrame:
    """The window's failed and timed-out executions never retried; `skip` says why one at the attempt cap
    (workflows.retry_max_attempts) is not retried, else None. attrs["max_attempts"]: the cap."""
    cap = int(rb.thresholds["workflows"]["retry_max_attempts"])
    found = rb.query("retryable_executions", window_minutes=window_minutes, limit=limit)
    if found.attrs.get("error"):
        return found
    skip = [CAPPED.format(attempt=int(a), cap=cap) if a >= cap else None for a in found["attempt"]]
    planned = found.assign(skip=pd.Series(skip, index=found.index, dtype=object))
    planned.attrs.update(found.attrs, max_attempts=cap)
    skipped = planned["skip"].notna().sum()
    if skipped:
        print(f"{skipped} of {len(planned)} skipped: at attempt {cap} of at most {cap} (workflows.retry_max_attempts) "
              "they failed again; while the cause persists a retry fails too: fix it (sections 2 and 4), then run "
              "those workflows anew")
    return planned


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str, window_minutes: int,
        timeout_s: float = 30.0, approval: str = "") -> pd.DataFrame:
    """Dry run: the executions, marked (an approval request filed when the profile requires one). Apply: once
    approvals.gate lets it (`approval`: the approved request's id), `action` says re-queued as <new id>, skipped:
    <why> or failed: <why> (those at the attempt cap are skipped without being sent)."""
    marked = _marked(targets)
    if not apply and not targets.empty and not targets.attrs.get("error"):
        approvals.gate(rb, ACTION, _identity(targets[[skip is None for skip in marked]]), False, operator, approval,
                       identity=IDENTITY)
    if not apply:
        return targets if targets.empty else targets.assign(action=[
            skip or f"dry run: would retry (attempt {int(n) + 1})" for skip, n in zip(marked, targets["attempt"],
                                                                                  strict=True)])
    audit.require_operator(operator)
    criteria = {"status": ["failed", "timed_out"], "window_minutes": window_minutes,
                "max_attempts": targets.attrs.get("max_attempts")}
    capped = [{"execution": r.execution, "attempt": int(r.attempt), "reason": skip}
              for r, skip in zip(targets.itertuples(index=False), marked, strict=True) if skip]
    todo = targets[[skip is None for skip in marked]]
    if targets.attrs.get("error"):
        audit.declined(rb, ACTION, operator, audit.REFUSED, "the retryable executions could not be listed: "
                       + str(targets.attrs["error"]), criteria=criteria)
        return targets
    if todo.empty:
        audit.declined(rb, ACTION, operator, audit.NO_OP, f"no failed or timed-out execution of the last "
                       f"{window_minutes} minutes is waiting for a retry" + (
                           f" ({len(capped)} at the attempt cap)" if capped else ""),
                       criteria=criteria, capped=capped)
        return targets if targets.empty else targets.assign(action=marked)
    token = rb.env.secret("admin_token")
    if token is None:
        reason = rb.env.missing_secret_message("admin_token")
        audit.declined(rb, ACTION, operator, audit.REFUSED, reason, criteria=criteria)
        return targets.assign(action="not attempted: " + reason)
    allowed = approvals.gate(rb, ACTION, _identity(todo), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return targets.assign(action=[skip or "not attempted: refused: " + allowed.reason for skip in marked])
    ids = [str(i) for i in todo["execution"]]
    result = targets.assign(action=[skip or INTERRUPTED for skip in marked])
    fields = ({"request": allowed.request} if allowed.request else {}) | {"criteria": criteria,
              "targets": [{"execution": r.execution, "workflow": r.workflow, "status": r.status,
                           "attempt": int(r.attempt)} for r in todo.itertuples(index=False)],
              "capped": capped}

    def finished() -> dict:
        outcomes = dict(zip(targets["execution"].astype(str), result["action"], strict=True))
        return fields | {"outcomes": outcomes} | {kind: sum(o.startswith(prefix) for o in outcomes.values())
                                                  for kind, prefix in COUNTED}

    with audit.attempt(rb, ACTION, operator, fields, finished) as path:
        answered = dict(zip(ids, _retry(rb.env.api_base_url + ENDPOINT, token.reveal(), ids, timeout_s), strict=True))
        result["action"] = [skip or answered[str(i)] for skip, i in zip(marked, targets["execution"], strict=True)]
    result.attrs["audit"] = str(path)
    return result


def _identity(todo: pd.DataFrame) -> list[dict]:
    """The executions to retry as an approval holds them: execution and attempt first, then workflow and status."""
    return [{"execution": str(r.execution), "attempt": int(r.attempt), "workflow": str(r.workflow),
             "status": str(r.status)} for r in todo.itertuples(index=False)]


def _marked(targets: pd.DataFrame) -> list[str | None]:
    """Each target's reason not to retry it (plan's `skip`), or None: retry it."""
    if "skip" not in targets.columns:
        return [None] * len(targets)
    return [None if pd.isna(skip) else str(skip) for skip in targets["skip"]]


def _retry(url: str, token: str, ids: list[str], timeout_s: float) -> list[str]:
    try:
        retried = admin_post(url, token, {"ids": ids}, timeout_s).get("retried", {})
    except Unreachable as exc:
        return [f"failed: {exc}"] * len(ids)
    return [f"re-queued as {retried[i]}" if i in retried else "skipped: already retried or no longer failed"
            for i in ids]
