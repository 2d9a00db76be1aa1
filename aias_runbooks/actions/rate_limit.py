"""Guarded action: clear one rate-limit key through the app's /api/admin/rate-limits/clear (admin token).

Dry run unless apply: the plan is that key's active block, as rate_limits shows it. Apply (operator required)
asks the endpoint to lift it; the runbook itself never writes to the database. Audited in output/audit.jsonl
(started before the call, finished with the endpoint's answer, also when the call fails or is interrupted; an
apply refused, or a no-op because the key is not blocked, as one record with the reason).
"""

from __future__ import annotations

import pandas as pd

from ..runbook import Runbook
from ..sources.http import Unreachable, admin_post
from . import approvals, audit

ACTION = "clear_rate_limit"
IDENTITY = ["key"]   # what an approval approves (approvals.plan_hash): the rate-limit key to unblock
ENDPOINT = "/api/admin/rate-limits/clear"
INTERRUPTED = "interrupted: outcome unknown (read the rate limits again)"


def plan(active: pd.DataFrame, key: str) -> pd.DataFrame:
    """The active block of `key` (one row), or no row when that key is not blocked (or no key was named)."""
    if active.empty or not key.strip():
        return active.head(0)
    return active[active["key"] == key.strip()].reset_index(drop=True)


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str, key: str = "",
        timeout_s: float = 10.0, approval: str = "") -> pd.DataFrame:
    """Dry run: the block, marked (an approval request filed when the profile requires one). Apply: once
    approvals.gate lets it (`approval`: the approved request's id), the endpoint lifts it; `action` says cleared or
    failed: <answer>. An apply with no key named (refused) or the key not blocked (a no-op) is audited with its
    reason."""
    if not apply and not targets.empty:
        approvals.gate(rb, ACTION, _identity(targets), False, operator, approval, identity=IDENTITY)
    if not apply:
        return targets if targets.empty else targets.assign(action="dry run: would clear")
    audit.require_operator(operator)
    if targets.empty:
        named = key.strip()
        audit.declined(rb, ACTION, operator, audit.NO_OP if named else audit.REFUSED,
                       f"{named} is not blocked" if named else "no rate-limit key was named (the `key` parameter)",
                       criteria={"key": named or None})
        return targets
    key = str(targets.iloc[0]["key"])
    token = rb.env.secret("admin_token")
    if token is None:
        reason = rb.env.missing_secret_message("admin_token")
        audit.declined(rb, ACTION, operator, audit.REFUSED, reason, criteria={"key": key})
        return targets.assign(action="not attempted: " + reason)
    allowed = approvals.gate(rb, ACTION, _identity(targets), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return targets.assign(action="not attempted: refused: " + allowed.reason)
    result = targets.assign(action=INTERRUPTED)
    fields = ({"request": allowed.request} if allowed.request else {}) | {"criteria": {"key": key},
              "targets": [{"key": key, "blocked_until": str(targets.iloc[0]["blocked_until"])}]}
    with audit.attempt(rb, ACTION, operator, fields, lambda: fields | {"outcome": result.iloc[0]["action"]}) as path:
        result["action"] = _clear(rb.env.api_base_url + ENDPOINT, token.reveal(), key, timeout_s)
    result.attrs["audit"] = str(path)
    return result


def _identity(targets: pd.DataFrame) -> list[dict]:
    """The block as an approval holds it: its key (the identity), and until when it was blocked."""
    return [{"key": str(targets.iloc[0]["key"]), "blocked_until": str(targets.iloc[0]["blocked_until"])}]


def _clear(url: str, token: str, key: str, timeout_s: float) -> str:
    try:
        answer = admin_post(url, token, {"key": key}, timeout_s)
    except Unreachable as exc:
        return f"failed: {exc}"
    return f"cleared ({answer.get('cleared', 0)} window(s) unblocked)"
