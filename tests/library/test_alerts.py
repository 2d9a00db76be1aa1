"""Inbound alert webhooks (aias_runbooks/alerts/inbound.py): the vendors' own payload examples parse into the alerts
a person would expect, a sender's proof is checked as the vendor signs it, and anything else is refused with one
line and the right HTTP status, quoting no secret and no body."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from aias_runbooks.alerts import inbound
from aias_runbooks.alerts.model import Alert, Refused

CONTRACTS = Path(__file__).resolve().parents[1] / "sandbox" / "contracts"
SECRET = "s3cr3t-webhook-signing-key-0123456789"


def example(path: str, name: str) -> bytes:
    return yaml.safe_load((CONTRACTS / path).read_text())["examples"][name].encode()


def refused(kind: str, body: bytes | str) -> Refused:
    with pytest.raises(Refused) as caught:
        inbound.parse(kind, body.encode() if isinstance(body, str) else body)
    assert caught.value.status == 400 and "\n" not in caught.value.reason
    return caught.value


def denied(auth: str, headers: dict[str, str], body: bytes = b"{}", **options) -> str:
    with pytest.raises(Refused) as caught:
        inbound.verify(auth, SECRET, headers, body, **options)
    assert caught.value.status == 401 and "\n" not in caught.value.reason
    assert SECRET not in caught.value.reason
    return caught.value.reason


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- Alertmanager --------------------------------------------------------------------------------------------


def test_an_alertmanager_notification_is_one_alert_per_alert_sharing_the_group_key():
    (alert,) = inbound.parse("alertmanager", example("alertmanager/webhook-v4.yaml", "firing"), "am")
    assert alert == Alert("alertmanager", "am", "1a30ba71cca2921f",
                          '{}/{severity="critical"}:{alertname="HighErrorRate"}', "firing",
                          {"alertname": "HighErrorRate", "instance": "api.example.org", "job": "api",
                           "severity": "critical"},
                          {"summary": "5xx above 1 % for 5 minutes",
                           "description": "The API answers 5xx to 4.2 % of requests."},
                          datetime(2026, 12, 7, 11, 48, 26, 739266, tzinfo=timezone.utc), None, None, None)
    assert alert.window_minutes(datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)) == 12, "11:48:26 to 12:00, up"
    assert alert.window_minutes(datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc)) == 1, "never below one minute"
    assert len(alert.group_id) == 12 and alert.group_id.isalnum()


def test_a_group_keeps_each_alerts_status_fingerprint_and_times_in_utc():
    alerts = inbound.parse("alertmanager", example("alertmanager/webhook-v4.yaml", "group"))
    assert [(a.status, a.fingerprint, a.labels["instance"]) for a in alerts] == [
        ("firing", "5d3c7cbb3f2a9c10", "db-1:9187"), ("resolved", "0c9e61e2f4b07a11", "db-2:9187")]
    assert {a.group for a in alerts} == {'{}:{alertname="PostgresConnectionsExhausted"}'}, "one group: one dedup key"
    assert alerts[0].starts_at == datetime(2026, 12, 7, 10, 50, tzinfo=timezone.utc), "+01:00 read as UTC"
    assert alerts[1].ends_at == datetime(2026, 12, 7, 10, 40, tzinfo=timezone.utc)


def test_an_alert_without_a_fingerprint_gets_one_from_its_labels():
    body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "A", "x": "1"}, "startsAt": "2026-12-07T11:00:00Z"},
        {"status": "firing", "labels": {"x": "1", "alertname": "A"}, "startsAt": "2026-12-07T11:05:00Z"},
        {"status": "firing", "labels": {"alertname": "A", "x": "2"}, "startsAt": "2026-12-07T11:05:00Z"}]}
    first, same, other = inbound.parse("alertmanager", json.dumps(body).encode())
    assert first.fingerprint == same.fingerprint != other.fingerprint


# -- Grafana -------------------------------------------------------------------------------------------------


def test_a_grafana_notification_parses_as_alertmanagers_does():
    alerts = inbound.parse("grafana", example("grafana/webhook-contact-point.yaml", "firing"), "grafana")
    assert [(a.source, a.sender, a.status, a.labels["zone"], a.fingerprint) for a in alerts] == [
        ("grafana", "grafana", "firing", "us-1", "c6eadffa33fcdf37"),
        ("grafana", "grafana", "firing", "eu-1", "bc97ff14869b13e3")]
    assert alerts[0].starts_at == datetime(2026, 12, 7, 9, 51, 3, 157076, tzinfo=timezone.utc)
    assert alerts[0].group == alerts[1].group and alerts[0].group.endswith(':{alertname="StripeWebhookFailures"}')
    (resolved,) = inbound.parse("grafana", example("grafana/webhook-contact-point.yaml", "resolved"))
    assert (resolved.status, resolved.ends_at) == ("resolved", datetime(2026, 12, 7, 11, 20, tzinfo=timezone.utc))


def test_each_source_wants_its_own_version():
    line = refused("grafana", example("alertmanager/webhook-v4.yaml", "firing")).reason
    assert line == "grafana payload version '4' is not supported; valid: \"1\""
    line = refused("alertmanager", example("grafana/webhook-contact-point.yaml", "firing")).reason
    assert line == "alertmanager payload version '1' is not supported; valid: \"4\""


# -- PagerDuty -----------------------------------------------------------------------------------------------


def test_a_pagerduty_trigger_is_one_firing_alert_for_its_incident():
    (alert,) = inbound.parse("pagerduty", example("pagerduty_webhooks/v3-webhooks.yaml", "triggered"), "pd")
    assert (alert.source, alert.sender, alert.status) == ("pagerduty", "pd", "firing")
    assert (alert.fingerprint, alert.group, alert.incident, alert.reference) == ("PGR0VU2", "PGR0VU2", "2", "PGR0VU2")
    assert alert.labels == {"alertname": "A little bump in the road", "title": "A little bump in the road",
                            "service": "API Service", "service_id": "PF9KMXH", "urgency": "high", "priority": "P1",
                            "incident_status": "triggered", "event_type": "incident.triggered"}
    assert alert.annotations["html_url"] == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert alert.starts_at == datetime(2026, 12, 7, 11, 45, 22, tzinfo=timezone.utc)


def test_a_pagerduty_resolve_resolves_the_same_incident_and_other_events_are_no_alert():
    (alert,) = inbound.parse("pagerduty", example("pagerduty_webhooks/v3-webhooks.yaml", "resolved"))
    assert (alert.status, alert.group, alert.incident) == ("resolved", "PGR0VU2", "2")
    assert alert.ends_at == datetime(2026, 12, 7, 12, 10, tzinfo=timezone.utc)
    for name in ("annotated", "service_updated"):
        assert inbound.parse("pagerduty", example("pagerduty_webhooks/v3-webhooks.yaml", name)) == [], name
    ping = {"event": {"id": "x", "event_type": "pagey.ping", "resource_type": "pagey", "data": {"message": "Hello"}}}
    assert inbound.parse("pagerduty", json.dumps(ping).encode()) == []
    acked = json.loads(example("pagerduty_webhooks/v3-webhooks.yaml", "triggered"))
    acked["event"]["event_type"] = "incident.acknowledged"
    assert inbound.parse("pagerduty", json.dumps(acked).encode()) == [], "someone is on it: nothing to start"


def test_a_pagerduty_event_not_of_v3s_shape_is_refused():
    assert refused("pagerduty", '{"messages": []}').reason.startswith("pagerduty payload: `event` must be an object")
    broken = json.loads(example("pagerduty_webhooks/v3-webhooks.yaml", "triggered"))
    broken["event"]["data"]["number"] = "two"
    assert refused("pagerduty", json.dumps(broken)).reason == "the incident: `number` must be a whole number"


# -- what is not a payload -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "the body is not JSON (at character 2); valid: the alertmanager webhook's JSON object"),
    (b'{"a": "\xff"}', "the body is not UTF-8 (byte 8); valid: the alertmanager webhook's JSON object"),
    (b"[1, 2]", "the body is JSON but not an object; valid: the alertmanager webhook's JSON object"),
    (b"[" * 100000, "the body nests too deeply; valid: the alertmanager webhook's JSON object"),
    (b'{"version": "4", "groupKey": "g", "alerts": {}}', "alertmanager payload: `alerts` must be a list of alerts"),
    (b'{"version": 4, "groupKey": "g", "alerts": []}',
     "alertmanager payload version not text is not supported; valid: \"4\""),
    (b'{"groupKey": "g", "alerts": []}', "alertmanager payload version none is not supported; valid: \"4\""),
    (b'{"version": "4", "alerts": []}', "the payload: `groupKey` must be non-empty text"),
], ids=["bad-json", "not-utf8", "array", "deep", "alerts-object", "version-number", "no-version", "no-group"])
def test_a_body_that_is_not_the_payload_is_refused_with_one_line(body, reason):
    assert refused("alertmanager", body).reason == reason


def alertmanager(**alert) -> str:
    one = {"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-12-07T11:00:00Z"} | alert
    return json.dumps({"version": "4", "groupKey": "g", "status": "firing", "alerts": [one]})


@pytest.mark.parametrize("alert, reason", [
    ({"status": "pending"}, "alertmanager payload: alert 1 has status 'pending'; valid: firing, resolved"),
    ({"labels": ["alertname"]}, "alert 1: `labels` must be an object of name: text"),
    ({"labels": {"alertname": 5}}, "alert 1: label 'alertname' is not text; valid: a string"),
    ({"labels": {"alertname": "x" * 5000}}, "alert 1: label 'alertname' is 5000 characters long; valid: at most 1024"),
    ({"labels": {"a\x1b[2J": "x"}}, "alert 1: `labels` has the name 'a\\x1b[2J'; valid: 1 to 128 printable characters"),
    ({"labels": {f"l{i}": "x" for i in range(200)}}, "alert 1: `labels` has 200 entries; valid: at most 128"),
    ({"annotations": {"d": "y" * 20000}},
     "alert 1: annotation 'd' is 20000 characters long; valid: at most 16384"),
    ({"startsAt": "yesterday"}, "alert 1: `startsAt` 'yesterday' is not an RFC 3339 time (e.g. 2026-12-07T12:00:00Z)"),
    ({"startsAt": "2026-12-07T11:00:00"}, "alert 1: `startsAt` '2026-12-07T11:00:00' has no UTC offset (e.g. "
     "2026-12-07T12:00:00Z)"),
    ({"fingerprint": "f" * 2000}, "alert 1: `fingerprint` is 2000 characters long; valid: at most 1024"),
], ids=["status", "labels-list", "label-number", "label-long", "label-name-escape", "many-labels", "annotation-long",
        "time", "naive-time", "fingerprint-long"])
def test_an_alert_not_of_the_documented_shape_is_refused_naming_the_field(alert, reason):
    assert refused("alertmanager", alertmanager(**alert)).reason == reason


def test_a_notification_of_too_many_alerts_is_refused_and_500_are_parsed():
    one = json.loads(alertmanager())["alerts"][0]
    body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": [one] * 500}
    assert len(inbound.parse("alertmanager", json.dumps(body).encode())) == 500
    body["alerts"] = [one] * 1001
    assert refused("alertmanager", json.dumps(body)).reason == (
        "alertmanager payload holds 1001 alerts; valid: at most 1000 in one notification (set max_alerts in the "
        "receiver)")


def test_an_unknown_kind_is_refused():
    assert refused("nagios", b"{}").reason == "unknown alert source 'nagios'; valid: alertmanager, grafana, pagerduty"


# -- who sent it ---------------------------------------------------------------------------------------------


def test_a_bearer_token_is_checked_and_never_quoted():
    inbound.verify("bearer", SECRET, {"Authorization": f"Bearer {SECRET}"}, b"{}")
    inbound.verify("bearer", SECRET, {"authorization": f"bearer {SECRET}"}, b"{}")   # any case, as HTTP says
    assert denied("bearer", {}) == "no Authorization header; valid: `Authorization: Bearer <the sender's token>`"
    assert denied("bearer", {"Authorization": f"Basic {SECRET}"}).startswith("the Authorization header is not a "
                                                                            "bearer token")
    wrong = SECRET[:-1] + "X"
    assert denied("bearer", {"Authorization": f"Bearer {wrong}"}) == \
        "the bearer token is wrong; valid: the token the sender's secret holds"
    assert wrong not in denied("bearer", {"Authorization": f"Bearer {wrong}"})


def test_grafanas_hmac_signature_of_the_body_is_checked():
    body = example("grafana/webhook-contact-point.yaml", "firing")
    inbound.verify("grafana-hmac", SECRET, {"X-Grafana-Alerting-Signature": sign(body)}, body)
    assert denied("grafana-hmac", {"X-Grafana-Alerting-Signature": sign(body + b" ")}, body).startswith(
        "the X-Grafana-Alerting-Signature does not match the body")
    assert denied("grafana-hmac", {"X-Grafana-Alerting-Signature": sign(body, "another-secret")}, body)
    assert denied("grafana-hmac", {}, body).startswith("no X-Grafana-Alerting-Signature header")
    inbound.verify("grafana-hmac", SECRET, {"X-Sig": sign(body)}, body, signature_header="X-Sig")


def test_grafanas_timestamped_signature_is_checked_and_an_old_one_refused():
    body = example("grafana/webhook-contact-point.yaml", "resolved")
    now = 1_796_640_000
    stamp = str(now - 30)
    headers = {"X-Grafana-Alerting-Signature": sign(stamp.encode() + b":" + body),
               "X-Grafana-Alerting-Timestamp": stamp}
    options = {"timestamp_header": "X-Grafana-Alerting-Timestamp", "now": now}
    inbound.verify("grafana-hmac", SECRET, headers, body, **options)
    assert denied("grafana-hmac", headers, body, timestamp_header="X-Grafana-Alerting-Timestamp",
                  now=now + 600) == ("the X-Grafana-Alerting-Timestamp is more than 300 s from this host's clock; "
                                     "valid: a request signed now (a replayed one is refused)")
    moved = headers | {"X-Grafana-Alerting-Timestamp": str(now - 20)}
    assert denied("grafana-hmac", moved, body, **options).startswith("the X-Grafana-Alerting-Signature does not match")
    body_only = {"X-Grafana-Alerting-Signature": sign(body), "X-Grafana-Alerting-Timestamp": stamp}
    assert denied("grafana-hmac", body_only, body, **options), "with a timestamp header the timestamp is signed too"
    assert denied("grafana-hmac", {"X-Grafana-Alerting-Signature": sign(body)}, body, **options).startswith(
        "no valid X-Grafana-Alerting-Timestamp header")


def test_pagerduty_signatures_any_of_several_matching_is_accepted():
    body = example("pagerduty_webhooks/v3-webhooks.yaml", "triggered")
    inbound.verify("pagerduty-signature", SECRET, {"X-PagerDuty-Signature": f"v1={sign(body)}"}, body)
    rotated = f"v1={sign(body, 'the-old-secret')},v1={sign(body)}"
    inbound.verify("pagerduty-signature", SECRET, {"x-pagerduty-signature": rotated}, body)
    reason = ("no v1 signature in X-PagerDuty-Signature matches the body; valid: `v1=<hex HMAC-SHA256 of the body>` "
              "signed with the webhook subscription's secret")
    old = {"X-PagerDuty-Signature": f"v1={sign(body, 'the-old-secret')}"}
    assert denied("pagerduty-signature", old, body) == reason
    assert denied("pagerduty-signature", {"X-PagerDuty-Signature": f"v1={sign(body)}"}, body + b"\n") == reason
    assert denied("pagerduty-signature", {"X-PagerDuty-Signature": f"v2={sign(body)}"}, body) == reason
    assert denied("pagerduty-signature", {}, body).startswith("no X-PagerDuty-Signature header")


def test_the_pagerduty_docs_signature_example_is_the_shape_we_read():
    """The docs' header (two v1 entries, comma-separated) is read as two candidates: neither is this body's."""
    docs = yaml.safe_load((CONTRACTS / "pagerduty_webhooks/v3-webhooks.yaml").read_text())["signature"]
    assert denied("pagerduty-signature", {"X-PagerDuty-Signature": docs["docs_example"]}, b"{}").startswith(
        "no v1 signature in X-PagerDuty-Signature matches")


def test_an_unknown_auth_or_no_secret_accepts_nothing():
    assert denied("basic", {}) == "unknown sender authentication 'basic'; valid: bearer, grafana-hmac, " \
        "pagerduty-signature"
    with pytest.raises(Refused) as caught:
        inbound.verify("bearer", "", {"Authorization": "Bearer "}, b"{}")
    assert caught.value.status == 401


def test_a_window_is_whole_minutes_rounded_up():
    start = datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc)
    alert = Alert("alertmanager", "", "f", "g", "firing", starts_at=start)
    assert [alert.window_minutes(start + timedelta(seconds=s)) for s in (0, 1, 60, 61, 3600)] == [1, 1, 1, 2, 60]
    assert Alert("alertmanager", "", "f", "g", "firing").window_minutes() == 1, "no start given: one minute"
