"""output/audit.jsonl: who did what to the platform, when, from which run; one record per phase of an attempt.

A guarded action writes `phase: started` (operator, criteria, every planned target) before it changes anything and
`phase: finished` (each target's outcome) however it ends, both with the same `attempt` id: a run killed between
the two still leaves the started record.
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
from ..records import append_jsonl
from ..runbook import Runbook


def require_operator(operator: str) -> None:
    """An apply must name who does it (the `operator` parameter): refused before anything changes."""
    if not operator.strip():
        raise ValueError("apply=True needs the operator's name (the `operator` parameter) for the audit record")


def append(rb: Runbook, action: str, attempt: str, phase: str, operator: str, **fields: Any) -> Path:
    """Append one audit record (who, when, which run, then the action's own fields); returns the file's path."""
    path = paths.output_dir() / "audit.jsonl"
    append_jsonl(path, {
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "action": action,
        "attempt": attempt, "phase": phase, "operator": operator, "login": getpass.getuser(), "runbook": rb.slug,
        "run_id": rb.run_id, "env": rb.env.name, "incident": rb.incident, **fields})
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
