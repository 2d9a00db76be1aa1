"""output/audit.jsonl: who did what to the platform, when, from which run; one record per phase of an attempt.

A guarded action writes `phase: started` (operator, criteria, every planned target) before it changes anything and
`phase: finished` (each target's outcome) however it ends, both with the same `attempt` id: a run killed between
the two still leaves the started record. An apply that changes nothing on purpose writes one record instead, its
phase its outcome: `refused` (a guard said no: a wrong confirm_target, drift, nothing blamed, the live deployment
changed since the plan, no credential) or `no-op` (nothing left to do, e.g. an apply repeated after it succeeded),
with the `reason`.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import paths
from ..findings import jsonable
from ..records import append_jsonl
from ..runbook import Runbook
from ..runner.redact import redact_json


def require_operator(operator: str) -> None:
    """An apply must name who does it (the `operator` parameter): refused before anything changes."""
    if not operator.strip():
        raise ValueError("apply=True needs the operator's name (the `operator` parameter) for the audit record")


def append(rb: Runbook, action: str, attempt: str, phase: str, operator: str, **fields: Any) -> Path:
    """Append one audit record (who, when, which run, then the action's own fields); returns the file's path.

    The record passes the redaction the run's report gets (runner/redact.py: the profile's secret values in every
    spelling, and key shapes), with how many were masked in `redactions`: a target's error may quote the
    credential it was sent (an admin endpoint echoing the bearer token), and audit.jsonl, like the incident bundles
    that copy it, lies outside the report folder the runner scans.
    """
    path = paths.output_dir() / "audit.jsonl"
    record, masked = redact_json(jsonable({
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "action": action,
        "attempt": attempt, "phase": phase, "operator": operator, "login": getpass.getuser(), "runbook": rb.slug,
        "run_id": rb.run_id, "env": rb.env.name, "incident": rb.incident, **fields}), rb.secret_values)
    append_jsonl(path, record | ({"redactions": masked} if masked else {}))
    return path


REFUSED, NO_OP = "refused", "no-op"     # the outcome (and phase) of an apply that changed nothing on purpose


def declined(rb: Runbook, action: str, operator: str, outcome: str, reason: str, **fields: Any) -> Path:
    """Audit an apply that changed nothing on purpose (outcome REFUSED or NO_OP, with the reason): one record, no
    started/finished pair, since nothing was attempted; and say so in one line of the run's output (a table cell
    would cut the reason short). Returns the audit file's path."""
    if outcome not in (REFUSED, NO_OP):
        raise ValueError(f"outcome must be {REFUSED!r} or {NO_OP!r}, not {outcome!r}")
    path = append(rb, action, uuid.uuid4().hex, outcome, operator, **fields, outcome=outcome, reason=reason)
    print(f"{action} {outcome}, nothing changed: {reason} (audited in {path.name})")
    return path


@contextmanager
def attempt(rb: Runbook, action: str, operator: str, started: dict[str, Any],
            finished: Callable[[], dict[str, Any]]) -> Iterator[Path]:
    """One attempt: `started` recorded before the block changes anything, `finished()` (read when the block ends,
    however it ends: failed, interrupted) recorded after it, under one attempt id. Yields the audit file's path."""
    attempt_id = uuid.uuid4().hex
    path = append(rb, action, attempt_id, "started", operator, **started)
    try:
        yield path
    finally:
        append(rb, action, attempt_id, "finished", operator, **finished())
