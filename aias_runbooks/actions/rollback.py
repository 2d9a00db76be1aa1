"""Guarded action: roll production back from the deployment the error spike blamed (Vercel's Instant Rollback).

It acts only on what the finding blamed (ERROR_SPIKE_AFTER_DEPLOY's deployment), never "the one before the live
one": the target is the newest READY production deployment created before the blamed one, so a bug that arrived
with an older deployment still under the live one is rolled back past, not onto. The plan says, instead of a
target:
- no-op, when production already serves a deployment created before the blamed one (rolled back already: a second
  apply does nothing and says so);
- refused, when nothing is blamed, the deployments cannot be read, or no READY deployment precedes the blamed one.
Apply (operator required) re-reads the live deployment just before the call and refuses if it is no longer the one
the plan saw; then POST /v1/projects/{project}/rollback/{deployment}, and the deployments are read again to
confirm which one is live. Every apply is audited in output/audit.jsonl: started before the call and finished with
the outcome, or one refused / no-op record with the reason.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding
from ..runbook import Runbook
from ..sources import deploys
from ..sources.http import Unreachable
from . import approvals, audit

ACTION = "rollback_deployment"
BLAMING = "ERROR_SPIKE_AFTER_DEPLOY"     # the finding whose evidence names the deployment to roll back from
COLUMNS = ["live", "blamed", "rollback_to", "rollback_to_created", "rollback_to_message", "action"]
IDENTITY = ["live", "blamed", "rollback_to"]   # what an approval approves (approvals.plan_hash): from, why, to
REFUSED, NO_OP = f"{audit.REFUSED}: ", f"{audit.NO_OP}: "     # `action` of a plan that must not call Vercel


def blamed(findings: list[Finding]) -> str | None:
    """The deployment the error spike started with (ERROR_SPIKE_AFTER_DEPLOY's evidence), or None if none is."""
    return next((f.evidence.get("deployment") for f in findings if f.code == BLAMING), None)


def plan(deployments: pd.DataFrame | None, blamed_id: str | None) -> pd.DataFrame:
    """One row: the live deployment, the blamed one and the newest READY production deployment created before the
    blamed one; or, in `action`, why an apply would be a no-op or refused."""
    if deployments is None:
        return _row(REFUSED + "the deployments could not be read (section 1)")
    live = deployments[deployments["live"]]
    live_id = live.iloc[0]["id"] if len(live) else None
    if not blamed_id:
        return _row(REFUSED + f"no deployment is blamed ({BLAMING} names none): fix the cause; a rollback would "
                    "only move production away from code nothing blamed", live_id)
    bad = deployments[deployments["id"] == blamed_id]
    if bad.empty:
        return _row(REFUSED + f"the blamed deployment {blamed_id} is not among the latest {len(deployments)} "
                    "production deployments", live_id, blamed_id)
    if live_id is None:
        return _row(REFUSED + "no production deployment is live", live_id, blamed_id)
    created = bad.iloc[0]["created"]
    if live.iloc[0]["created"] < created:
        return _row(NO_OP + f"production serves {live_id}, created before the blamed {blamed_id}: rolled back "
                    "already, nothing to do", live_id, blamed_id)
    older = deployments[(deployments["created"] < created) & (deployments["state"] == "READY")]
    if older.empty:
        return _row(REFUSED + f"no READY production deployment was created before the blamed {blamed_id}",
                    live_id, blamed_id)
    target = older.sort_values("created").iloc[-1]
    return pd.DataFrame([{"live": live_id, "blamed": blamed_id, "rollback_to": target["id"],
                          "rollback_to_created": target["created"], "rollback_to_message": target["message"],
                          "action": None}], columns=COLUMNS)


def _row(action: str, live: str | None = None, blamed_id: str | None = None) -> pd.DataFrame:
    return pd.DataFrame([{"live": live, "blamed": blamed_id, "action": action}], columns=COLUMNS)


def run(rb: Runbook, target: pd.DataFrame, apply: bool, operator: str, reason: str = "",
        approval: str = "") -> pd.DataFrame:
    """Dry run: the plan, marked (an approval request filed when the profile requires one). Apply: refused or no-op
    as the plan, the live deployment re-read now or approvals.gate (`approval`: the approved request's id) says
    (audited), else the rollback, then which deployment is live now."""
    row = target.iloc[0]
    if not apply and not row["action"]:
        approvals.gate(rb, ACTION, _identity(row), False, operator, approval, identity=IDENTITY)
    if not apply:
        outcome, _, why = (row["action"] or "").partition(": ")
        said = (f"dry run: an apply would be {'a ' if outcome == audit.NO_OP else ''}{outcome}: {why}" if outcome else
                f"dry run: would point production at {row['rollback_to']}, the newest READY deployment created "
                f"before the blamed {row['blamed']}")
        print(said)
        return target.assign(action=said)
    audit.require_operator(operator)
    criteria: dict[str, Any] = {"from": row["live"], "blamed": row["blamed"], "to": _text(row["rollback_to"])}
    if row["action"]:
        return _declined(rb, target, operator, row["action"], criteria)
    vercel, problem = deploys.vercel_of(rb.env)
    if vercel is None:
        return _declined(rb, target, operator, REFUSED + problem, criteria)
    criteria["project"] = vercel.project
    changed = _changed_since(vercel, row)
    if changed:
        return _declined(rb, target, operator, REFUSED + changed, criteria)
    allowed = approvals.gate(rb, ACTION, _identity(row), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return target.assign(action=REFUSED + allowed.reason)
    fields = {"criteria": criteria} | ({"request": allowed.request} if allowed.request else {})
    result = target.assign(action="interrupted: outcome unknown (list the deployments again)")
    with audit.attempt(rb, ACTION, operator, fields, lambda: fields | {"outcome": result.iloc[0]["action"]}) as path:
        try:
            vercel.rollback(row["rollback_to"], reason or f"aias-runbooks {rb.slug} {rb.run_id}")
            live = vercel.deployments()
            now = live.loc[live["live"], "id"].tolist()
            result["action"] = "rolled back" if now == [row["rollback_to"]] else f"failed: live is now {now}"
        except Unreachable as exc:
            result["action"] = f"failed: {exc}"
    print(f"{result.iloc[0]['action']}: from {row['live']} to {row['rollback_to']} (audited in {path.name})")
    result.attrs["audit"] = str(path)
    return result


def _changed_since(vercel: deploys.Vercel, row: pd.Series) -> str:
    """Why the plan no longer holds, read from Vercel just before the call ("" when it does): the live deployment
    is not the one the plan saw, or the target is no longer a READY production deployment."""
    try:
        now = vercel.deployments()
    except Unreachable as exc:
        return f"the live deployment could not be read again before the rollback: {exc}"
    live = now.loc[now["live"], "id"].tolist()
    if live != [row["live"]]:
        return (f"production changed since the plan: {row['live']} was live, now {', '.join(live) or 'none'} is; "
                "run the runbook again to judge the deployment live now")
    ready = now[(now["id"] == row["rollback_to"]) & (now["state"] == "READY")]
    if ready.empty:
        return f"{row['rollback_to']} is no longer a READY production deployment"
    return ""


def _declined(rb: Runbook, target: pd.DataFrame, operator: str, action: str, criteria: dict[str, Any]
              ) -> pd.DataFrame:
    """Audit an apply that does not call Vercel (refused, or a no-op) with its reason; the plan saying why."""
    outcome, _, why = action.partition(": ")
    path = audit.declined(rb, ACTION, operator, outcome, why, criteria=criteria)
    result = target.assign(action=action)
    result.attrs["audit"] = str(path)
    return result


def _identity(row: pd.Series) -> list[dict[str, Any]]:
    """The plan's one target as an approval holds it: from which deployment, the blamed one, to which."""
    return [{key: _text(row[key]) for key in IDENTITY} | {"rollback_to_message": _text(row["rollback_to_message"])}]


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)
