"""Guarded action: terminate leaked sessions (idle in transaction). Dry run unless apply; every apply is audited.

Only the sessions listed in the plan are touched, and each only if it is still the same session (pid and
backend_start) and still idle in transaction when the action runs.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .. import paths
from ..records import append_jsonl
from ..runbook import Runbook
from ..sources import database

ACTION = "terminate_leaked_sessions"


def plan(rb: Runbook, min_idle_s: int, application: str = "") -> pd.DataFrame:
    """The sessions the action would terminate: idle in transaction longer than min_idle_s."""
    frame = rb.query("idle_in_transaction", min_idle_s=min_idle_s, application=application or None)
    frame.attrs["criteria"] = {"min_idle_s": min_idle_s, "application": application or None}
    return frame


def run(rb: Runbook, targets: pd.DataFrame, apply: bool, operator: str) -> pd.DataFrame:
    """Dry run: returns the plan unchanged. Apply: terminates exactly those sessions and writes the audit record."""
    if targets.empty:
        return targets
    if not apply:
        return targets.assign(action="dry run: would terminate")
    if not operator.strip():
        raise ValueError("apply=True needs the operator's name (the `operator` parameter) for the audit record")
    conn = rb.connection()
    if conn is None:
        raise RuntimeError("the database is not reachable; nothing was terminated")
    done = database.query(conn, "terminate_backends", pids=[int(p) for p in targets["pid"]],
                          backend_starts=list(targets["backend_start"]))
    result = targets.merge(done[["pid", "terminated"]], on="pid", how="left")
    result["terminated"] = result["terminated"].fillna(False).astype(bool)
    result["action"] = result["terminated"].map({True: "terminated", False: "skipped: no longer idle in transaction"})
    path = audit(rb, operator, targets.attrs.get("criteria", {}), result)
    result.attrs["audit"] = str(path)
    return result


def audit(rb: Runbook, operator: str, criteria: dict[str, Any], result: pd.DataFrame) -> Path:
    """Append who, when, what and the result to output/audit.jsonl; returns its path."""
    path = paths.output_dir() / "audit.jsonl"
    append_jsonl(path, {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "action": ACTION,
        "operator": operator, "login": getpass.getuser(), "runbook": rb.slug, "run_id": rb.run_id,
        "env": rb.env.name, "incident": rb.incident, "criteria": criteria,
        "targets": result[["pid", "role", "application", "client", "idle_s", "backend_start", "action"]]
        .to_dict(orient="records"),
        "terminated": int(result["terminated"].sum()),
    })
    return path
