"""Guarded action: retry failed or timed-out workflow executions through the app's /api/admin/executions/retry.

Dry run unless apply: the plan is the window's failed and timed-out executions that were never retried
(sql/retryable_executions.sql). Apply (operator required) asks the endpoint to re-queue exactly those; it skips
any that was retried meanwhile (at most one retry per execution), so a second apply retries nothing twice. The
runbook itself never writes to the database. Audited in output/audit.jsonl (started before the call, finished with
each execution's outcome, also when the call fails or is interrupted).
"""

from __future__ import annotations

import pandas as pd

from ..runbook import Runbook
from ..sources.http import Unreachable, admin_post
from . import audit

ACTION = "retry_executions"
ENDPOINT = "/api/admin/executions/retry"
INTERRUPTED = "interrupted: outcome unknown (list the retryable executions again)"
COUNTED = (("retried", "re-queued"), ("skipped", "skipped"), ("failed", "failed"))   # audit: outcomes by kind


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str, window_minutes: int,
        timeout_s: float = 30.0) -> pd.DataFrame:
    """Dry run: the executions, marked. Apply: `action` says re-queued as <new id>, skipped or failed: <why>."""
    if targets.empty:
        return targets
    if not apply:
        return targets.assign(action="dry run: would retry")
    audit.require_operator(operator)
    token = rb.env.secret("admin_token")
    if token is None:
        return targets.assign(action="not attempted: " + rb.env.missing_secret_message("admin_token"))
    ids = [str(i) for i in targets["execution"]]
    result = targets.assign(action=INTERRUPTED)
    fields = {"criteria": {"status": ["failed", "timed_out"], "window_minutes": window_minutes},
              "targets": [{"execution": r.execution, "workflow": r.workflow, "status": r.status}
                          for r in targets.itertuples(index=False)]}

    def finished() -> dict:
        outcomes = dict(zip(ids, result["action"], strict=True))
        return fields | {"outcomes": outcomes} | {kind: sum(o.startswith(prefix) for o in outcomes.values())
                                                  for kind, prefix in COUNTED}

    with audit.attempt(rb, ACTION, operator, fields, finished) as path:
        result["action"] = _retry(rb.env.api_base_url + ENDPOINT, token.reveal(), ids, timeout_s)
    result.attrs["audit"] = str(path)
    return result


def _retry(url: str, token: str, ids: list[str], timeout_s: float) -> list[str]:
    try:
        retried = admin_post(url, token, {"ids": ids}, timeout_s).get("retried", {})
    except Unreachable as exc:
        return [f"failed: {exc}"] * len(ids)
    return [f"re-queued as {retried[i]}" if i in retried else "skipped: already retried or no longer failed"
            for i in ids]
