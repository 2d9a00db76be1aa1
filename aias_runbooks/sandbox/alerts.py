"""`aias-runbooks sandbox alert NAME`: the sandbox's own alert source. It posts what Alertmanager would post to a
webhook receiver (webhook_config, payload version 4) when one of the platform's alert rules fires for the current
scenario, or resolves with --resolve, to `serve` (POST <to>/alerts/<sender>), with the bearer token Alertmanager's
http_config would carry (the sandbox profile's alertmanager_token).

Each alert is a rule of the playbook's: its alertname is the one params/routes.yaml routes (HighErrorRate,
PostgresConnectionsExhausted, StripeWebhookFailures, ApiDown), its labels environment=sandbox, service and severity;
startsAt is when the scenario was set (`sandbox up --scenario`), so a route's window covers what the scenario did.
The fingerprint is Alertmanager's own (FNV-1a 64 of the sorted label names and values), the groupKey that of a
route grouping by alertname.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import UsageError
from ..printable import show

ZERO_TIME = "0001-01-01T00:00:00Z"   # Alertmanager's endsAt for an alert still firing
EXTERNAL_URL = "http://127.0.0.1:9093"
RECEIVER = "aias-runbooks"
DEFAULT_TO = "http://127.0.0.1:8087"


@dataclass(frozen=True)
class Rule:
    alertname: str
    service: str
    severity: str
    scenario: str      # the scenario that fires it
    summary: str


RULES = {
    "error-spike": Rule("HighErrorRate", "api", "critical", "error-spike-after-deploy",
                        "5xx responses over 1 % of API requests for 5 minutes"),
    "pool-exhaustion": Rule("PostgresConnectionsExhausted", "database", "critical", "db-pool-exhaustion",
                            "Postgres refuses connections: too many clients already"),
    "webhook-failures": Rule("StripeWebhookFailures", "billing", "critical", "webhook-endpoint-down",
                             "Stripe webhook deliveries failing: over 5 % in 5 minutes"),
    "api-down": Rule("ApiDown", "api", "critical", "api-down", "the API's health endpoint does not answer"),
}


def rule(name: str) -> Rule:
    if name not in RULES:
        raise UsageError(f"unknown alert {show(name)}; valid: {', '.join(RULES)}")
    return RULES[name]


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (prometheus/common model.LabelSet.Fingerprint): FNV-1a 64 over
    each label name and value, sorted by name, each followed by the separator byte 0xff; 16 hex digits."""
    value = 14695981039346656037
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(name: str, starts_at: datetime, resolved: bool = False, now: datetime | None = None,
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The webhook body Alertmanager posts for the rule `name` (one alert, grouped by alertname); `labels` are
    added to the rule's own (a test's extra label)."""
    chosen = rule(name)
    now = now or datetime.now(timezone.utc)
    tags = {"alertname": chosen.alertname, "environment": "sandbox", "service": chosen.service,
            "severity": chosen.severity} | (labels or {})
    status = "resolved" if resolved else "firing"
    annotations = {"summary": chosen.summary, "description": f"sandbox scenario {chosen.scenario}"}
    alert = {"status": status, "labels": tags, "annotations": annotations, "startsAt": _iso(starts_at),
             "endsAt": _iso(now) if resolved else ZERO_TIME,
             "generatorURL": f"http://127.0.0.1:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{chosen.alertname}%22%7D",
             "fingerprint": fingerprint(tags)}
    group = {"alertname": chosen.alertname}
    return {"receiver": RECEIVER, "status": status, "alerts": [alert], "groupLabels": group,
            "commonLabels": tags, "commonAnnotations": annotations, "externalURL": EXTERNAL_URL, "version": "4",
            "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}", "truncatedAlerts": 0}


def scenario_since() -> datetime:
    """When the running sandbox's scenario was set (now if no sandbox state says)."""
    from .control import read_state
    since = (read_state() or {}).get("scenario_since")
    return datetime.fromtimestamp(since if isinstance(since, (int, float)) else time.time(), timezone.utc)


def post(name: str, resolve: bool = False, to: str = DEFAULT_TO, sender: str = "alertmanager") -> list[str]:
    """Post the rule's alert to serve as Alertmanager would; one line per alert decided (or one line saying why
    the post was refused: UsageError)."""
    from ..settings import load_environment
    from ..sources import http
    body = payload(name, scenario_since(), resolve)
    token = load_environment("sandbox").secret("alertmanager_token")
    if token is None:
        raise UsageError("the sandbox is not running (no alertmanager_token): start it with `aias-runbooks sandbox "
                         "up --scenario ...`")
    url = f"{to.rstrip('/')}/alerts/{sender}"
    headers = {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json",
               "User-Agent": "Alertmanager/0.27.0"}
    try:
        response = http.request("POST", url, 10.0, headers, content=json.dumps(body).encode())
    except http.Unreachable as exc:
        raise UsageError(f"no answer from serve at {show(url, 200)} ({getattr(exc, 'reason', exc)}); is "
                         "`aias-runbooks serve` running there (--to)?") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 300 and not answer.get("alerts"):
        raise UsageError(f"serve refused the alert (HTTP {response.status_code}): "
                         f"{answer.get('error') or show(response.text, 200)}")
    return [f"{RULES[name].alertname} {'resolved' if resolve else 'firing'}: {a.get('decision')}"
            + (f" run {a['run_id']}" if a.get("run_id") else "") + (f" ({a['reason']})" if a.get("reason") else "")
            for a in answer.get("alerts", [])]
