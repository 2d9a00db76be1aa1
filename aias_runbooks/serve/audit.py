"""serve's audit log: one JSON line per alert accepted or refused (and per run filed or dropped), in
<output>/.serve/audit.jsonl, appended under a lock (records.append_jsonl), redacted of every secret serve knows.

A line says who sent it, which route took it, what was decided and why, and the run it started: never the body,
whose labels and annotations are the sender's text (the decision's reason names a bad label in one short line).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..printable import printable
from ..records import append_jsonl
from ..runner.redact import redact_text

FOLDER = ".serve"
NAME = "audit.jsonl"
MAX_TEXT = 300   # a field's longest text: a group key or a reason is one short line, never a body


def path(output: Path) -> Path:
    return output / FOLDER / NAME


class Audit:
    """Appends decisions to the audit log; every value redacted of `secrets` and cut to one short line."""

    def __init__(self, output: Path, secrets: list[str]) -> None:
        self.path = path(output)
        self.secrets = secrets
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def record(self, decision: str, *, sender: str | None = None, route: str | None = None,
               fingerprint: str | None = None, group: str | None = None, run_id: str | None = None,
               reason: str | None = None, **more: Any) -> dict[str, Any]:
        """Append one line and return it: when, the decision, sender, route, alert fingerprint and group, run id,
        reason (and any `more` short fields, such as a run's status)."""
        fields = {"sender": sender, "route": route, "fingerprint": fingerprint, "group": group, "decision": decision,
                  "run_id": run_id, "reason": reason, **more}
        line = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        line |= {k: self._clean(v) for k, v in fields.items()}
        append_jsonl(self.path, line)
        return line

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        text = printable(redact_text(text, self.secrets)[0])
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."
