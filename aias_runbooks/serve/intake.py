"""One POST /alerts/{sender}: who sent it, whether it is theirs and an alert payload, then each alert decided.

The request as a whole is refused, with one line and its status, and starts nothing: a sender routes.yaml does not
name (404), a body over `max_body_kb` (413, read no further than the limit), a missing or wrong token or signature
(401), a body that is not the sender's payload (400). Each alert in it is then, in this order:
- resolved: starts nothing; the route's notify channels are told the recovery (a PagerDuty incident resolves), and
  the group's dedup window ends, so its next firing is a new run;
- refused when no route matches its labels;
- a duplicate of its group's run (same route and group) within the route's dedup window, or while that run is
  still running or queued: the earlier run's id;
- refused when the route's parameters, rendered from its labels, fail the checks `run -p` makes (422);
- started now, queued, or refused at capacity (429): admission.py.
Every decision is one line in the audit log; the reply lists them, per alert: fingerprint, group, decision, run id,
reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..alerts import routes
from ..alerts.model import RESOLVED, Alert, Refused
from ..errors import UsageError
from ..printable import show
from .admission import DUPLICATE, REFUSED, STARTED, Admission
from .audit import Audit
from .runs import Runs, Ticket

UNROUTED = 200   # an alert no route takes is no fault of the sender: retrying it would change nothing
INVALID = 422
FULL = 429


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class Intake:
    """Decides posted alerts against the routes file; starts runs through `runs`."""

    def __init__(self, routing: routes.Routing, admission: Admission, runs: Runs, audit: Audit,
                 output: Path) -> None:
        self.routing, self.admission, self.runs, self.audit, self.output = routing, admission, runs, audit, output
        self.background: set[asyncio.Task] = set()

    def refuse(self, status: int, reason: str, sender: str | None) -> Reply:
        """A request refused as a whole: audited, and one line in the reply."""
        self.audit.record("refused", sender=sender, reason=reason, status=status)
        return Reply(status, {"error": reason})

    def alerts(self, sender: routes.Sender, headers: Mapping[str, str], body: bytes) -> Reply:
        """Verify and parse the body, then decide each alert (see the module)."""
        try:
            sender.verify(headers, body)
            alerts = sender.parse(body)
        except Refused as refused:
            return self.refuse(refused.status, refused.reason, sender.name)
        decided = [self.one(alert) for alert in alerts]
        statuses = {status for status, _ in decided}
        status = FULL if FULL in statuses else INVALID if statuses == {INVALID} else 200
        return Reply(status, {"sender": sender.name, "alerts": [item for _, item in decided]})

    def one(self, alert: Alert) -> tuple[int, dict[str, Any]]:
        route = self.routing.match(alert)
        if alert.status == RESOLVED:
            return self._resolved(alert, route)
        if route is None:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            return UNROUTED, self._decided(alert, None, REFUSED, None, f"no route matches the alert's labels "
                                           f"({show(labels, 160)}); see {self.routing.path.name}")
        key = f"{route.name}/{alert.group_id}"
        if earlier := self.admission.seen(key):
            return 200, self._decided(alert, route, DUPLICATE, earlier, "the group's run within the dedup window")
        try:
            job = routes.job_for(route, alert, output=self.output)
        except UsageError as exc:
            return INVALID, self._decided(alert, route, REFUSED, None, str(exc))
        run_id = self.runs.new_id()
        decision = self.admission.admit(key, route.dedup_minutes * 60, run_id)
        if decision.decision == REFUSED:
            return FULL, self._decided(alert, route, REFUSED, None, decision.reason)
        ticket = Ticket(run_id, job, route.name, alert.sender, alert.source, alert.fingerprint, alert.group,
                        alert.group_id, key, alert.reference)
        self.runs.admitted(ticket, started=decision.decision == STARTED)
        return 202, self._decided(alert, route, decision.decision, run_id, decision.reason)

    def _resolved(self, alert: Alert, route: routes.Route | None) -> tuple[int, dict[str, Any]]:
        """Starts nothing; ends the group's window and tells the route's channels the recovery (in the background:
        the sender is not kept waiting on Slack or PagerDuty)."""
        if route is not None:
            self.admission.resolve(f"{route.name}/{alert.group_id}")
            if route.notify is not None:
                task = asyncio.get_running_loop().create_task(self._recovered(alert, route))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
        return 200, self._decided(alert, route, RESOLVED, None, "a resolved alert starts no run" +
                                  ("; its route's channels are told the recovery" if route and route.notify else ""))

    async def _recovered(self, alert: Alert, route: routes.Route) -> None:
        try:
            problems = await asyncio.to_thread(self.runs.tell, route.name, alert.group, alert.group_id, None,
                                               route.notify, "OK", None)
        except Exception as exc:  # noqa: BLE001 - a failed notification is audited, never fatal
            problems = [f"notifications not sent ({type(exc).__name__}: {exc})"]
        if problems:
            self.audit.record("notify-failed", sender=alert.sender, route=route.name, fingerprint=alert.fingerprint,
                              group=alert.group, reason="; ".join(problems))

    def _decided(self, alert: Alert, route: routes.Route | None, decision: str, run_id: str | None,
                 reason: str | None) -> dict[str, Any]:
        line = self.audit.record(decision, sender=alert.sender, route=route.name if route else None,
                                 fingerprint=alert.fingerprint, group=alert.group, run_id=run_id, reason=reason)
        return {key: line[key] for key in ("fingerprint", "group", "decision", "run_id", "reason")}

    async def wait(self) -> None:
        """Until the recoveries being told are told."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
