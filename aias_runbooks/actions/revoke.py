"""Guarded action: revoke compromised credentials through the app's /api/admin/credentials/revoke (admin token).

The playbook's first Data Breach step. Dry run unless apply: the plan is each listed user's live sessions and refresh
tokens (counts, never ids: a session id is a bearer token) and each listed API key (already revoked or not). Apply
(operator required) asks the endpoint to sign those users out everywhere (delete their auth.sessions and
auth.refresh_tokens) and set the keys' revoked_at, all in one transaction; the runbook itself never writes to the
database. A user's sessions are all ended, also one opened since the plan (the attacker may have logged in again:
signing out everywhere is the point); a key is revoked only if it still is not (`revoked_at IS NULL` in the same
statement), so an earlier revocation time is kept. Audited in output/audit.jsonl (started before the call,
finished with each target's outcome, also when the call fails or the run is interrupted; a refused or no-op apply
as one record with the reason).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from .. import paths
from ..runbook import Runbook
from ..sources.http import Unreachable, admin_post
from . import approvals, audit

ACTION = "revoke_credentials"
ENDPOINT = "/api/admin/credentials/revoke"
FAILED = "failed: "
NOT_ATTEMPTED = "not attempted: "
INTERRUPTED = "interrupted: outcome unknown (read the sessions and keys again)"
IDENTITY = ["target", "id"]   # what an approval approves (approvals.plan_hash): which users and which API keys
COLUMNS = ["target", "id", "who", "sessions", "refresh_tokens", "revoked_at"]


def plan(rb: Runbook, user_ids: list[str], key_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(targets, users, keys): one target row per listed user and key; the users' sessions and the keys as read."""
    users = rb.query("access_sessions_of_users", user_ids=list(user_ids)) if user_ids else pd.DataFrame(
        columns=["user_id", "email", "sessions", "refresh_tokens", "newest_session_at", "newest_session_ip",
                 "newest_session_client"])
    keys = rb.query("access_api_keys", key_ids=list(key_ids)) if key_ids else pd.DataFrame(
        columns=["api_key_id", "tenant_id", "name", "created_at", "last_used_at", "revoked_at"])
    rows = [{"target": "user", "id": u.user_id, "who": u.email, "sessions": int(u.sessions),
             "refresh_tokens": int(u.refresh_tokens), "revoked_at": None} for u in users.itertuples(index=False)]
    rows += [{"target": "api_key", "id": k.api_key_id, "who": f"{k.name} (tenant {k.tenant_id})", "sessions": None,
              "refresh_tokens": None, "revoked_at": None if pd.isna(k.revoked_at) else str(k.revoked_at)}
             for k in keys.itertuples(index=False)]
    return pd.DataFrame(rows, columns=COLUMNS).astype({"sessions": "Int64", "refresh_tokens": "Int64"}), users, keys


def _dry(row: Any) -> str:
    if row.target == "user":
        return f"dry run: would end {row.sessions} session(s) and {row.refresh_tokens} refresh token(s)"
    if isinstance(row.revoked_at, str):
        return f"dry run: already revoked at {row.revoked_at}: nothing to do"
    return "dry run: would set revoked_at"


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str, timeout_s: float = 15.0,
        approval: str = "") -> pd.DataFrame:
    """Dry run: the plan, each row saying what would be revoked (an approval request filed when the profile requires
    one). Apply: once approvals.gate lets it (`approval`: the approved request's id), the endpoint revokes all of
    them in one transaction; `action` says what each lost (revoked: ... / already revoked / failed: ...)."""
    if not apply and not targets.empty:
        approvals.gate(rb, ACTION, _records(targets), False, operator, approval, identity=IDENTITY)
    if not apply:
        return targets if targets.empty else targets.assign(action=[_dry(r) for r in targets.itertuples(index=False)])
    audit.require_operator(operator)
    users = targets.loc[targets["target"] == "user", "id"].tolist()
    keys = targets.loc[targets["target"] == "api_key", "id"].tolist()
    criteria = {"users": users, "api_keys": keys}
    if targets.empty:
        audit.declined(rb, ACTION, operator, audit.NO_OP, "no user or API key is listed as compromised",
                       criteria=criteria)
        return targets
    token = rb.env.secret("admin_token")
    if token is None:
        reason = rb.env.missing_secret_message("admin_token")
        audit.declined(rb, ACTION, operator, audit.REFUSED, reason, criteria=criteria)
        return targets.assign(action=NOT_ATTEMPTED + reason)
    allowed = approvals.gate(rb, ACTION, _records(targets), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return targets.assign(action=NOT_ATTEMPTED + "refused: " + allowed.reason)
    linked = {"request": allowed.request} if allowed.request else {}
    result = targets.assign(action=INTERRUPTED)      # what the audit says if the call never comes back
    with audit.attempt(rb, ACTION, operator, linked | {"criteria": criteria, "targets": _records(result)},
                       lambda: linked | {"criteria": criteria, "targets": _records(result),
                                         "outcome": _outcome(result)}) as path:
        result["action"] = _call(rb.env.api_base_url + ENDPOINT, token.reveal(), users, keys, result, timeout_s)
    result.attrs["audit"] = str(path)
    return result


def _call(url: str, token: str, users: list[str], keys: list[str], targets: pd.DataFrame,
          timeout_s: float) -> list[str]:
    try:
        answer = admin_post(url, token, {"users": users, "api_keys": keys}, timeout_s)
    except Unreachable as exc:
        return [FAILED + str(exc)] * len(targets)
    out = []
    for row in targets.itertuples(index=False):
        if row.target == "user":
            done = answer.get("users", {}).get(row.id, {})
            out.append(f"revoked: {done.get('sessions', 0)} session(s), {done.get('refresh_tokens', 0)} "
                       "refresh token(s) ended")
        else:
            said = answer.get("api_keys", {}).get(row.id, "not found")
            out.append("revoked: revoked_at set" if said == "revoked" else said)
    return out


def _outcome(result: pd.DataFrame) -> str:
    users = int(((result["target"] == "user") & result["action"].str.startswith("revoked")).sum())
    keys = int(((result["target"] == "api_key") & result["action"].str.startswith("revoked")).sum())
    failed = int(result["action"].str.startswith(FAILED).sum())
    return f"{users} user(s) signed out everywhere, {keys} API key(s) revoked" + (f", {failed} failed" if failed
                                                                                    else "")


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def taken(rb: Runbook) -> list[dict[str, Any]]:
    """This run's audit records of this action (output/audit.jsonl), oldest first: the incident's actions taken."""
    path = paths.output_dir() / "audit.jsonl"
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if rb.run_id in line:
                record = json.loads(line)
                if record.get("run_id") == rb.run_id and record.get("action") == ACTION:
                    records.append(record)
    return records
