"""Guarded action: roll production back to the previous READY production deployment (Vercel's Instant Rollback).

Dry run unless apply: the plan names the deployment live now and the one production would point at. Apply
(operator required) calls POST /v1/projects/{project}/rollback/{deployment} and reads the deployments again to
confirm which one is live. Audited in output/audit.jsonl (started before the call, finished with the outcome).
"""

from __future__ import annotations

import pandas as pd

from ..runbook import Runbook
from ..sources import deploys
from ..sources.http import Unreachable
from . import audit

ACTION = "rollback_deployment"
COLUMNS = ["live", "rollback_to", "rollback_to_created", "rollback_to_message", "action"]


def plan(deployments: pd.DataFrame | None) -> pd.DataFrame:
    """One row: the live production deployment and the newest READY production deployment before it."""
    if deployments is None or not deployments["live"].any():
        return pd.DataFrame(columns=COLUMNS)
    live = deployments[deployments["live"]].iloc[0]
    older = deployments[(deployments["created"] < live["created"]) & (deployments["state"] == "READY")]
    if older.empty:
        return pd.DataFrame([{"live": live["id"], "action": "nothing to roll back to: no earlier READY deployment"}],
                            columns=COLUMNS)
    target = older.sort_values("created").iloc[-1]
    return pd.DataFrame([{"live": live["id"], "rollback_to": target["id"], "rollback_to_created": target["created"],
                          "rollback_to_message": target["message"], "action": None}], columns=COLUMNS)


def run(rb: Runbook, target: pd.DataFrame, apply: bool, operator: str, reason: str = "") -> pd.DataFrame:
    """Dry run: the plan, marked. Apply: the rollback, then which deployment is live now."""
    if target.empty or pd.isna(target.iloc[0]["rollback_to"]):
        return target
    if not apply:
        return target.assign(action=f"dry run: would point production at {target.iloc[0]['rollback_to']}")
    audit.require_operator(operator)
    vercel, problem = deploys.vercel_of(rb.env)
    if vercel is None:
        return target.assign(action=f"not attempted: {problem}")
    row = target.iloc[0]
    fields = {"criteria": {"project": vercel.project, "from": row["live"], "to": row["rollback_to"]}}
    result = target.assign(action="interrupted: outcome unknown (list the deployments again)")
    with audit.attempt(rb, ACTION, operator, fields, lambda: fields | {"outcome": result.iloc[0]["action"]}) as path:
        try:
            vercel.rollback(row["rollback_to"], reason or f"aias-runbooks {rb.slug} {rb.run_id}")
            live = vercel.deployments()
            now = live.loc[live["live"], "id"].tolist()
            result["action"] = "rolled back" if now == [row["rollback_to"]] else f"failed: live is now {now}"
        except Unreachable as exc:
            result["action"] = f"failed: {exc}"
    result.attrs["audit"] = str(path)
    return result
