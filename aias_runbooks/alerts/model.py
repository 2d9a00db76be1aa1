"""One shape for an alert, whichever system sent it, and the refusal an inbound alert gets.

Alertmanager and Grafana send a group of alerts in one notification: each alert becomes an Alert whose
`fingerprint` is its own and whose `group` is the notification's groupKey, so that a storm of 500 alerts of one
group is one identity to deduplicate on (serve runs once per group within its dedup window). A PagerDuty v3
webhook is about one incident: its fingerprint and group are the incident's id, `incident` its number (the
report's incident id) and `reference` its id again, for the note posted back to it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

SOURCES = ("alertmanager", "grafana", "pagerduty")
FIRING, RESOLVED = "firing", "resolved"


class Refused(Exception):
    """An inbound alert refused: `status` is the HTTP status to answer, `reason` one line naming what is wrong and
    what is valid. It never quotes a secret or a whole body (values it quotes pass through printable.show)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Alert:
    """One alert: its source ("alertmanager", "grafana", "pagerduty"), the sender (routes.yaml's name, "" until
    serve knows it), its own fingerprint, the group it deduplicates on, firing or resolved, its labels and
    annotations (text: text), when it started and ended (UTC; None when the sender says none), the incident id
    for the report (PagerDuty's incident number; None otherwise) and the sender's reference for a post-back
    (PagerDuty's incident id; None otherwise)."""

    source: str
    sender: str
    fingerprint: str
    group: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    incident: str | None = None
    reference: str | None = None

    @property
    def group_id(self) -> str:
        """The group as a short id fit for a file name or an incident id (12 hex digits of its SHA-256): a
        groupKey is `{}/{severity="critical"}:{alertname="X"}`, which no folder name should hold."""
        return hashlib.sha256(f"{self.source}\n{self.group}".encode()).hexdigest()[:12]

    def window_minutes(self, now: datetime | None = None) -> int:
        """Whole minutes from the alert's start to `now` (rounded up; at least 1, also for a start the sender's
        clock put in the future or did not give): the window a runbook should look back over."""
        if self.starts_at is None:
            return 1
        now = now or datetime.now(timezone.utc)
        return max(1, math.ceil((now - self.starts_at).total_seconds() / 60))

    def context(self, now: datetime | None = None) -> dict[str, Any]:
        """What a route's templates see under `alert` (labels and annotations are given beside it)."""
        return {"source": self.source, "sender": self.sender, "status": self.status,
                "fingerprint": self.fingerprint, "group": self.group, "group_id": self.group_id,
                "incident": self.incident, "reference": self.reference,
                "starts_at": self.starts_at.isoformat() if self.starts_at else "",
                "ends_at": self.ends_at.isoformat() if self.ends_at else "",
                "window_minutes": self.window_minutes(now)}
