"""Inbound alert webhooks: parse a body into Alerts, verify who sent it.

parse(kind, body) reads the three payloads `serve` accepts, each as its vendor documents it (contract excerpts
with their sources: tests/sandbox/contracts/{alertmanager,grafana,pagerduty_webhooks}/):
- alertmanager: the webhook_config payload, "version": "4": one notification per alert group, each alert with
  status, labels, annotations, startsAt, endsAt, fingerprint; the group is the notification's groupKey.
- grafana: Grafana Alerting's webhook contact point, "version": "1": the same alert shape (plus values, silence and
  dashboard URLs) and groupKey, with orgId, title, state and message.
- pagerduty: a v3 webhook, {"event": {...}}: incident.triggered, .reopened, .escalated and .unacknowledged are
  firing, incident.resolved is resolved; any other event (acknowledged, annotated, a ping, a service event) says
  nothing about whether the problem is there and gives no alert (an empty list, not an error).

verify(auth, secret, headers, body) checks the sender's proof with a constant-time comparison:
- bearer: `Authorization: Bearer <token>` (Alertmanager's http_config.authorization, Grafana's Authorization
  header settings);
- grafana-hmac: Grafana's hmacConfig: the lowercase hex HMAC-SHA256 of the body, or of "<timestamp>:<body>" when
  a timestamp header is configured (then the timestamp, Unix seconds, must be within MAX_SKEW_S of now, so a
  captured request cannot be replayed later), in X-Grafana-Alerting-Signature unless configured otherwise;
- pagerduty-signature: X-PagerDuty-Signature, one or more comma-separated `v1=<hex HMAC-SHA256 of the raw body>`
  (several while a secret is rotated): accepted when any matches.

Every refusal is a Refused with one line: bad JSON, the wrong shape, a wrong version, too many alerts or a field
too long is 400; a missing or wrong proof is 401. A reason names the field and what is valid; it quotes at most
a short, escaped value (printable.show), never a header's value or the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..printable import show
from .model import FIRING, RESOLVED, Alert, Refused

MAX_ALERTS = 1000          # alerts in one notification (Alertmanager's max_alerts is unlimited by default)
MAX_LABELS = 128           # labels (or annotations) on one alert
MAX_KEY = 128              # characters in a label or annotation name
MAX_LABEL = 1024           # characters in a label value: longer is no label a rule would write
MAX_ANNOTATION = 16384     # characters in an annotation value (descriptions, runbook text)
MAX_ID = 1024              # characters in a groupKey, a fingerprint, an incident id
MAX_SKEW_S = 300           # how far a Grafana signature's timestamp may be from this host's clock
MAX_SIGNATURES = 16        # v1= entries in one X-PagerDuty-Signature header
GRAFANA_SIGNATURE = "X-Grafana-Alerting-Signature"
PAGERDUTY_SIGNATURE = "X-PagerDuty-Signature"
KINDS = ("alertmanager", "grafana", "pagerduty")
AUTHS = ("bearer", "grafana-hmac", "pagerduty-signature")
VERSIONS = {"alertmanager": "4", "grafana": "1"}
PD_FIRING = ("incident.triggered", "incident.reopened", "incident.escalated", "incident.unacknowledged")
PD_RESOLVED = ("incident.resolved",)


def parse(kind: str, body: bytes, sender: str = "") -> list[Alert]:
    """The alerts in a webhook body of `kind` ("alertmanager", "grafana", "pagerduty"), each with `sender` (the
    routes.yaml sender's name); Refused(400, one line) when it is not such a payload."""
    if kind not in KINDS:
        raise Refused(400, f"unknown alert source {show(kind)}; valid: {', '.join(KINDS)}")
    data = _json(body, kind)
    if kind == "pagerduty":
        return _pagerduty(data, sender)
    return _group(kind, data, sender)


def _json(body: bytes, kind: str) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the body is not UTF-8 (byte {exc.start + 1}); valid: the {kind} webhook's JSON "
                      "object") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        at = f" (at character {exc.pos + 1})" if isinstance(exc, json.JSONDecodeError) else ""
        raise Refused(400, f"the body is not JSON{at}; valid: the {kind} webhook's JSON object") from None
    except RecursionError:
        raise Refused(400, f"the body nests too deeply; valid: the {kind} webhook's JSON object") from None
    if not isinstance(data, dict):
        raise Refused(400, f"the body is JSON but not an object; valid: the {kind} webhook's JSON object")
    return data


# -- Alertmanager and Grafana: a group of alerts -------------------------------------------------------------


def _group(kind: str, data: dict[str, Any], sender: str) -> list[Alert]:
    version = data.get("version")
    if version != VERSIONS[kind]:
        got = show(version) if isinstance(version, str) else "none" if version is None else "not text"
        raise Refused(400, f"{kind} payload version {got} is not supported; valid: \"{VERSIONS[kind]}\"")
    group = _text(data, "groupKey", MAX_ID, "the payload")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise Refused(400, f"{kind} payload: `alerts` must be a list of alerts")
    if len(alerts) > MAX_ALERTS:
        raise Refused(400, f"{kind} payload holds {len(alerts)} alerts; valid: at most {MAX_ALERTS} in one "
                      "notification (set max_alerts in the receiver)")
    return [_one(kind, item, number, group, sender) for number, item in enumerate(alerts, 1)]


def _one(kind: str, item: Any, number: int, group: str, sender: str) -> Alert:
    where = f"alert {number}"
    if not isinstance(item, dict):
        raise Refused(400, f"{kind} payload: {where} is not an object")
    status = item.get("status")
    if status not in (FIRING, RESOLVED):
        got = show(status) if isinstance(status, str) else "none" if status is None else "not text"
        raise Refused(400, f"{kind} payload: {where} has status {got}; valid: firing, resolved")
    labels = _mapping(item, "labels", MAX_LABEL, where, required=True)
    annotations = _mapping(item, "annotations", MAX_ANNOTATION, where, required=False)
    fingerprint = _text(item, "fingerprint", MAX_ID, where, required=False) or _fingerprint(labels)
    return Alert(kind, sender, fingerprint, group, status, labels, annotations,
                 _time(item, "startsAt", where, required=True), _time(item, "endsAt", where, required=False))


def _fingerprint(labels: dict[str, str]) -> str:
    """An alert's identity when the sender gives none (Alertmanager before 0.19): its sorted labels' hash."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mapping(item: dict[str, Any], key: str, limit: int, where: str, required: bool) -> dict[str, str]:
    raw = item.get(key)
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict):
        raise Refused(400, f"{where}: `{key}` must be an object of name: text")
    if len(raw) > MAX_LABELS:
        raise Refused(400, f"{where}: `{key}` has {len(raw)} entries; valid: at most {MAX_LABELS}")
    for name, value in raw.items():
        if not name or len(name) > MAX_KEY or not name.isprintable():
            raise Refused(400, f"{where}: `{key}` has the name {show(name)}; valid: 1 to {MAX_KEY} printable "
                          "characters")
        if not isinstance(value, str):
            raise Refused(400, f"{where}: {key[:-1]} {show(name)} is not text; valid: a string")
        if len(value) > limit:
            raise Refused(400, f"{where}: {key[:-1]} {show(name)} is {len(value)} characters long; valid: at "
                          f"most {limit}")
    return dict(raw)


def _text(item: dict[str, Any], key: str, limit: int, where: str, required: bool = True) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise Refused(400, f"{where}: `{key}` must be non-empty text")
    if len(value) > limit:
        raise Refused(400, f"{where}: `{key}` is {len(value)} characters long; valid: at most {limit}")
    return value


def _time(item: dict[str, Any], key: str, where: str, required: bool) -> datetime | None:
    """An RFC 3339 time as UTC; Go's zero time (0001-01-01T00:00:00Z, "no end yet") and a missing optional one
    are None."""
    value = item.get(key)
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Refused(400, f"{where}: `{key}` must be an RFC 3339 time (e.g. 2026-12-07T12:00:00Z)")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(400, f"{where}: `{key}` {show(value)} is not an RFC 3339 time (e.g. "
                      "2026-12-07T12:00:00Z)") from None
    if moment.tzinfo is None:
        raise Refused(400, f"{where}: `{key}` {show(value)} has no UTC offset (e.g. 2026-12-07T12:00:00Z)")
    return None if moment.year < 1970 else moment.astimezone(timezone.utc)


# -- PagerDuty v3: one incident event ------------------------------------------------------------------------


def _pagerduty(data: dict[str, Any], sender: str) -> list[Alert]:
    event = data.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise Refused(400, "pagerduty payload: `event` must be an object with an `event_type` (a v3 webhook: "
                      "{\"event\": {\"event_type\": \"incident.triggered\", ...}})")
    kind = event["event_type"]
    if kind in PD_FIRING:
        status = FIRING
    elif kind in PD_RESOLVED:
        status = RESOLVED
    else:
        return []    # acknowledged, annotated, priority changes, pings, service events: nothing to run
    incident = event.get("data")
    if not isinstance(incident, dict) or incident.get("type") != "incident":
        raise Refused(400, f"pagerduty payload: {show(kind)} must carry `data` of type incident")
    ident = _text(incident, "id", MAX_ID, "the incident")
    number = incident.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise Refused(400, "the incident: `number` must be a whole number")
    service = incident.get("service") if isinstance(incident.get("service"), dict) else {}
    priority = incident.get("priority") if isinstance(incident.get("priority"), dict) else {}
    labels = _strings({"alertname": incident.get("title"), "title": incident.get("title"),
                       "service": service.get("summary"), "service_id": service.get("id"),
                       "urgency": incident.get("urgency"), "priority": priority.get("summary"),
                       "incident_status": incident.get("status"), "event_type": kind}, MAX_LABEL)
    annotations = _strings({"html_url": incident.get("html_url"), "incident_key": incident.get("incident_key"),
                            "self": incident.get("self")}, MAX_ANNOTATION)
    started = _time(incident, "created_at", "the incident", required=False)
    ended = _time(event, "occurred_at", "the event", required=False) if status == RESOLVED else None
    return [Alert("pagerduty", sender, ident, ident, status, labels, annotations, started, ended,
                  str(number), ident)]


def _strings(values: dict[str, Any], limit: int) -> dict[str, str]:
    """The text values among `values` (absent and non-text ones left out); one too long is refused."""
    kept = {k: v for k, v in values.items() if isinstance(v, str) and v}
    for name, value in kept.items():
        if len(value) > limit:
            raise Refused(400, f"the incident: {name} is {len(value)} characters long; valid: at most {limit}")
    return kept


# -- who sent it ---------------------------------------------------------------------------------------------


def verify(auth: str, secret: str, headers: Mapping[str, str], body: bytes, *,
           signature_header: str | None = None, timestamp_header: str | None = None,
           now: float | None = None) -> None:
    """None when `headers` carry the proof `auth` asks for, made with `secret`; Refused(401, one line) otherwise.
    signature_header and timestamp_header are Grafana's hmacConfig header and timestampHeader (defaults:
    X-Grafana-Alerting-Signature, and no timestamp)."""
    if not secret:
        raise Refused(401, "the sender has no secret configured; nothing is accepted from it")
    if auth == "bearer":
        _bearer(secret, headers)
    elif auth == "grafana-hmac":
        _grafana(secret, headers, body, signature_header or GRAFANA_SIGNATURE, timestamp_header, now)
    elif auth == "pagerduty-signature":
        _pagerduty_signature(secret, headers, body)
    else:
        raise Refused(401, f"unknown sender authentication {show(auth)}; valid: {', '.join(AUTHS)}")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by name, whatever its case (aiohttp's headers are case-insensitive, a dict is not)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _bearer(secret: str, headers: Mapping[str, str]) -> None:
    value = header(headers, "Authorization")
    if not value:
        raise Refused(401, "no Authorization header; valid: `Authorization: Bearer <the sender's token>`")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "the Authorization header is not a bearer token; valid: `Authorization: Bearer "
                      "<the sender's token>`")
    if not _same(secret, token.strip()):
        raise Refused(401, "the bearer token is wrong; valid: the token the sender's secret holds")


def _grafana(secret: str, headers: Mapping[str, str], body: bytes, name: str, stamp_name: str | None,
             now: float | None) -> None:
    signature = header(headers, name)
    if not signature:
        raise Refused(401, f"no {name} header; valid: Grafana's HMAC signature (the contact point's hmacConfig "
                      "with the sender's secret)")
    signed = body
    if stamp_name:
        stamp = header(headers, stamp_name) or ""
        if not stamp.isdigit() or len(stamp) > 12:
            raise Refused(401, f"no valid {stamp_name} header; valid: the Unix time in seconds Grafana signs with")
        if abs((time.time() if now is None else now) - int(stamp)) > MAX_SKEW_S:
            raise Refused(401, f"the {stamp_name} is more than {MAX_SKEW_S} s from this host's clock; valid: a "
                          "request signed now (a replayed one is refused)")
        signed = stamp.encode() + b":" + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not _same(expected, signature.strip().lower()):
        raise Refused(401, f"the {name} does not match the body; valid: the hex HMAC-SHA256 of the body with the "
                      "sender's secret" + (f" (\"<{stamp_name}>:<body>\")" if stamp_name else ""))


def _pagerduty_signature(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    value = header(headers, PAGERDUTY_SIGNATURE)
    if not value:
        raise Refused(401, f"no {PAGERDUTY_SIGNATURE} header; valid: `v1=<hex HMAC-SHA256 of the body>` signed "
                      "with the webhook subscription's secret")
    given = [part.strip()[3:] for part in value.split(",")[:MAX_SIGNATURES] if part.strip().startswith("v1=")]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not any([_same(expected, signature.lower()) for signature in given]):   # a list: every one is compared
        raise Refused(401, f"no v1 signature in {PAGERDUTY_SIGNATURE} matches the body; valid: `v1=<hex "
                      "HMAC-SHA256 of the body>` signed with the webhook subscription's secret")
