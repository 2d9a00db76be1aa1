"""params/routes.yaml (aias_runbooks/alerts/routes.py): the shipped file loads and routes the sandbox's alerts to the
runbooks that diagnose them; a bad file is one line naming the entry before anything is served; an alert's labels
become parameters only through the checks `run -p` makes, so a hostile label refuses the alert and writes
nothing."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from aias_runbooks.alerts import inbound, routes
from aias_runbooks.alerts.model import Alert
from aias_runbooks.errors import UsageError
from aias_runbooks.settings import load_environment

BASE = {
    "serve": {"environment": "sandbox"},
    "senders": [{"name": "am", "type": "alertmanager", "auth": "bearer", "secret": "alertmanager_token"}],
    "routes": [{"name": "health", "match": {"alertname": "ApiDown"}, "runbook": "health-check",
                "environment": "sandbox", "parameters": {"samples": 10}}],
}
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def changed(part: str, index: int | None = None, **values) -> dict:
    """BASE with keys of `serve`, or of sender/route `index`, replaced (a value None removes the key)."""
    data = copy.deepcopy(BASE)
    target = data[part] if index is None else data[part][index]
    for key, value in values.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return data


def alert(labels: dict[str, str], starts: str = "2026-12-07T11:47:30Z", **extra) -> Alert:
    return Alert("alertmanager", "am", "fp", extra.pop("group", "{}:{alertname=\"X\"}"), "firing", labels,
                 extra.pop("annotations", {}), datetime.fromisoformat(starts), None, **extra)


def test_the_shipped_routes_file_routes_the_sandbox_alerts_to_their_runbooks(sandbox):
    routing = routes.load()
    assert routing.serve == routes.Settings("sandbox", 2, 20, 30, 1024)
    assert [(s.name, s.type, s.auth) for s in routing.senders] == [
        ("alertmanager", "alertmanager", "bearer"), ("grafana", "grafana", "grafana-hmac"),
        ("pagerduty", "pagerduty", "pagerduty-signature")]
    secret = load_environment("sandbox").secret("grafana_webhook_secret").reveal()
    assert secret == routing.sender("grafana").key.reveal() and secret not in repr(routing), "never printed"
    expect = {"HighErrorRate": "high-error-rate", "PostgresConnectionsExhausted": "database-connection-errors",
              "StripeWebhookFailures": "stripe-webhook-failures", "ApiDown": "health-check"}
    for name, runbook in expect.items():
        route = routing.match(alert({"alertname": name, "severity": "critical"}))
        job = routes.job_for(route, alert({"alertname": name}), NOW)
        assert (job.runbook, job.env) == (runbook, "sandbox"), name
        assert route.notify.pagerduty and route.notify.slack, f"{name}: a CRITICAL verdict pages, recovery resolves"
    job = routes.job_for(routing.match(alert({"alertname": "HighErrorRate"})), alert({"alertname": "HighErrorRate"}),
                         NOW)
    assert job.parameters == {"window_minutes": 23}, "13 minutes firing + 10 before the rule fired"
    assert job.incident.startswith("alert-") and len(job.incident) == 18
    assert routing.match(alert({"alertname": "SomethingElse"})) is None


def test_the_shipped_senders_verify_with_the_profiles_secrets(sandbox):
    """Each sender's proof made with the sandbox's secret is accepted, one made with another secret is not."""
    routing, profile = routes.load(), load_environment("sandbox")
    body = b'{"version": "4"}'
    token = profile.secret("alertmanager_token").reveal()
    routing.sender("alertmanager").verify({"Authorization": f"Bearer {token}"}, body)
    with pytest.raises(inbound.Refused):
        routing.sender("alertmanager").verify({"Authorization": "Bearer not-the-token"}, body)
    pd = routing.sender("pagerduty")
    good = hmac.new(profile.secret("pagerduty_webhook_secret").reveal().encode(), body, hashlib.sha256).hexdigest()
    pd.verify({"X-PagerDuty-Signature": f"v1={good}"}, body)
    with pytest.raises(inbound.Refused):
        pd.verify({"X-PagerDuty-Signature": f"v1={good[::-1]}"}, body)
    stamp = str(int(time.time()))
    signed = hmac.new(profile.secret("grafana_webhook_secret").reveal().encode(), stamp.encode() + b":" + body,
                      hashlib.sha256).hexdigest()
    grafana = {"X-Grafana-Alerting-Signature": signed, "X-Grafana-Alerting-Timestamp": stamp}
    routing.sender("grafana").verify(grafana, body)
    with pytest.raises(inbound.Refused):
        routing.sender("grafana").verify(grafana | {"X-Grafana-Alerting-Timestamp": str(int(stamp) - 1)}, body)


def test_a_pagerduty_incident_routes_on_its_service_and_keeps_its_number(sandbox):
    routing = routes.load()
    body = yaml.safe_load((Path(__file__).parents[1] / "sandbox/contracts/pagerduty_webhooks/v3-webhooks.yaml")
                          .read_text())["examples"]["triggered"].encode()
    (incident,) = routing.sender("pagerduty").parse(body)
    route = routing.match(incident)
    assert route.name == "pagerduty-api", "service 'API Service' matches ~(?i).*api.*"
    job = routes.job_for(route, incident, NOW)
    assert (job.runbook, job.incident) == ("health-check", "2"), "the report carries PagerDuty's incident number"


def test_the_first_matching_route_wins_and_a_regex_matches_the_whole_value(sandbox, tmp_path):
    data = copy.deepcopy(BASE)
    data["routes"] = [
        {"name": "critical-api", "match": {"alertname": "ApiDown", "severity": "~crit(ical)?"},
         "runbook": "health-check", "environment": "sandbox", "parameters": {"samples": 50}},
        {"name": "any-api", "match": {"alertname": "ApiDown"}, "runbook": "health-check", "environment": "sandbox"},
        {"name": "catch-all", "match": {}, "runbook": "triage", "environment": "sandbox"}]
    routing = routes.load(write(tmp_path, data))
    assert routing.match(alert({"alertname": "ApiDown", "severity": "critical"})).name == "critical-api"
    assert routing.match(alert({"alertname": "ApiDown", "severity": "crit"})).name == "critical-api"
    assert routing.match(alert({"alertname": "ApiDown", "severity": "not-critical"})).name == "any-api", "fullmatch"
    assert routing.match(alert({"alertname": "ApiDown"})).name == "any-api", "a label it lacks matches nothing"
    assert routing.match(alert({"alertname": "Other"})).name == "catch-all"


# -- templating ----------------------------------------------------------------------------------------------


def support(tmp_path: Path, **route) -> routes.Route:
    data = copy.deepcopy(BASE)
    data["routes"] = [{"name": "support", "match": {}, "runbook": "user-support", "environment": "sandbox",
                       "parameters": {"user": "{{ labels.user }}"}} | route]
    return routes.load(write(tmp_path, data)).routes[0]


def test_window_and_incident_are_templated_from_the_alert(sandbox, tmp_path):
    data = copy.deepcopy(BASE)
    data["routes"] = [{"name": "errors", "match": {}, "runbook": "high-error-rate", "environment": "sandbox",
                       "parameters": {"window_minutes": "{{ alert.window_minutes | clamp(10, 1440) }}"},
                       "incident": "INC-{{ labels.ticket }}", "dedup_minutes": 5}]
    route = routes.load(write(tmp_path, data)).routes[0]
    assert route.dedup_minutes == 5
    job = routes.job_for(route, alert({"ticket": "4711"}, "2026-12-07T10:30:00Z"), NOW)
    assert (job.parameters, job.incident) == ({"window_minutes": 90}, "INC-4711")
    job = routes.job_for(route, alert({"ticket": "1"}, "2026-12-07T11:58:00Z"), NOW)
    assert job.parameters == {"window_minutes": 10}, "two minutes firing: the runbook's least window"
    job = routes.job_for(route, alert({"ticket": "1"}, "2026-11-01T00:00:00Z"), NOW)
    assert job.parameters == {"window_minutes": 1440}
    with pytest.raises(UsageError) as caught:
        routes.job_for(route, alert({"ticket": "../../etc"}), NOW)
    assert str(caught.value) == ("route 'errors': incident id 'INC-../../etc' is not valid; use letters, digits, "
                                 "'.', '_' or '-' (at most 64, e.g. INC-1234)")


def test_an_undefined_label_refuses_the_alert_naming_the_route_and_the_label(sandbox, tmp_path):
    route = support(tmp_path)
    with pytest.raises(UsageError) as caught:
        routes.job_for(route, alert({"alertname": "Signups", "team": "growth"}), NOW)
    assert str(caught.value) == ("route 'support': parameter 'user' names what the alert does not have ('dict "
                                 "object' has no attribute 'user'); valid: the alert's labels: 'alertname, team'")


@pytest.mark.parametrize("value, problem", [
    ("../../etc/passwd", "must be an email or a user id (uuid), got '../../etc/passwd'"),
    ("x' OR 1=1; DROP TABLE users; --", "must be an email or a user id (uuid), got 'x' OR 1=1; DROP TABLE users; --'"),
    ("a" * 300, "must be at most 200 characters, got 300"),
    ("user0001@example.test\nrm -rf /", "must not contain control characters"),
    ("{{ 7 * 7 }}", "must be an email or a user id (uuid), got '{{ 7 * 7 }}'"),
], ids=["path", "sql", "300-chars", "newline", "template-in-label"])
def test_a_hostile_label_value_refuses_the_alert_and_writes_nothing(sandbox, tmp_path, value, problem):
    route = support(tmp_path)
    output = tmp_path / "output"
    with pytest.raises(UsageError) as caught:
        routes.job_for(route, alert({"user": value}), NOW, output)
    line = str(caught.value)
    assert line == f"route 'support': user-support: parameter 'user' {problem}", "a label is a value, never a template"
    assert not output.exists(), "a refused alert writes nothing, not even the report root"
    job = routes.job_for(route, alert({"user": "user0001@example.test"}), NOW, output)
    assert job.parameters == {"user": "user0001@example.test"} and not output.exists()


def test_a_template_cannot_reach_python_internals(sandbox, tmp_path):
    route = support(tmp_path, parameters={"user": "{{ labels.__class__.__init__.__globals__ }}"})
    with pytest.raises(UsageError) as caught:
        routes.job_for(route, alert({"user": "x"}), NOW)
    assert str(caught.value).startswith("route 'support': parameter 'user' ")


# -- a bad routes file ---------------------------------------------------------------------------------------


BAD = [
    (changed("serve", max_running=0),
     "serve: `max_running` '0' is not valid; valid: a whole number from 1 to 32 (default 2)"),
    (changed("serve", port=8080), "serve: unknown key 'port'; valid: environment, max_running, max_queued, "
     "dedup_minutes, max_body_kb"),
    (changed("senders", 0, type="nagios"), "senders, sender 1 ('am'): `type` 'nagios' must be one of alertmanager, "
     "grafana, pagerduty"),
    (changed("senders", 0, auth="pagerduty-signature"), "senders, sender 1 ('am'): `auth` 'pagerduty-signature' "
     "must be one of bearer for type alertmanager"),
    (changed("senders", 0, secret="no_such_role"), "senders, sender 1 ('am'): no_such_role is not configured for "
     "environment 'sandbox': run `aias-runbooks sandbox up` (name its variable under secrets: in "
     "params/environments/sandbox.yaml)"),
    (changed("senders", 0, secret=None), "senders, sender 1 ('am'): `secret` is required: the secret role in "
     "environment 'sandbox' that holds the sender's token or signing secret"),
    (changed("senders", 0, timestamp_header="X-Ts"), "senders, sender 1 ('am'): `timestamp_header` is only for auth "
     "grafana-hmac and must be a header name (e.g. X-Grafana-Alerting-Timestamp)"),
    (changed("senders", 0, name="a b"), "senders, sender 1 needs a name: letters, digits, '.', '_' or '-' (at most "
     "64, e.g. alertmanager)"),
    (changed("routes", 0, runbook="no-such-runbook"), "routes, route 1 ('health'): unknown runbook "
     "'no-such-runbook'; valid: "),
    (changed("routes", 0, environment="staging"), "routes, route 1 ('health'): unknown environment 'staging'; "
     "valid: "),
    (changed("routes", 0, parameters={"sample": 3}), "routes, route 1 ('health'): runbook 'health-check' has no "
     "parameter 'sample'; valid: samples, interval_ms, timeout_s"),
    (changed("routes", 0, runbook="high-error-rate", parameters={"apply": True}), "routes, route 1 ('health'): "
     "parameter 'apply' cannot be set by an alert: an alert starts a diagnosis, a guarded action needs a person "
     "(run it by hand with --operator)"),
    (changed("routes", 0, parameters={"environment": "production"}), "routes, route 1 ('health'): set the "
     "environment with the route's `environment`, not a parameter"),
    (changed("routes", 0, parameters={"samples": "{{ labels.n "}), "routes, route 1 ('health'): parameter "
     "'samples' is not a valid template ("),
    (changed("routes", 0, match={"severity": "~crit("}), "routes, route 1 ('health'): `match` 'severity': "
     "'~crit(' is not a regular expression (missing ), unterminated subpattern); valid: ~ then a Python regex, "
     "matched against the whole value"),
    (changed("routes", 0, match={"code": 500}), "routes, route 1 ('health'): `match` 'code': label names and values "
     "must be text (quote numbers and true/false)"),
    (changed("routes", 0, match=None), "routes, route 1 ('health'): `match` must be a mapping of label: value (or "
     "~regex), e.g. {alertname: HighErrorRate}; {} matches every alert"),
    (changed("routes", 0, notify={"slack": "yes"}), "routes, route 1 ('health'): `notify.slack` must be true or "
     "false"),
    (changed("routes", 0, dedup_minutes=0), "routes, route 1 ('health'): `dedup_minutes` '0' is not valid; valid: "
     "a whole number from 1 to 1440 (default 30)"),
    (changed("routes", 0, incident=12), "routes, route 1 ('health'): `incident` must be a template of the incident "
     "id (e.g. \"{{ alert.incident }}\"; default: PagerDuty's incident number, else alert-<the group's id>)"),
    (changed("routes", 0, matches={}), "routes, route 1 ('health'): unknown key 'matches'; valid: name, match, "
     "runbook, environment, parameters, incident, notify, dedup_minutes"),
]


@pytest.mark.parametrize("data, message", BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_a_bad_routes_file_is_one_line_naming_the_entry(sandbox, tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(UsageError) as caught:
        routes.load(path)
    line = str(caught.value)
    assert "\n" not in line
    expected = f"routes file '{path}', {message}"
    assert line == expected if not message.endswith((": ", "(")) else line.startswith(expected), line


@pytest.mark.parametrize("text, message", [
    ("serve: {environment: sandbox}\nsenders: []\n", " must hold exactly `serve:`, `senders:` and `routes:` (an "
     "example: params/routes.yaml)"),
    (json.dumps({**BASE, "routes": []}), ", routes must be a non-empty list of routes"),
    (json.dumps({**BASE, "senders": BASE["senders"] * 2}), ", senders, sender 2: the name 'am' is used twice; "
     "names are unique"),
    ("serve: &a {environment: sandbox}\n", " is not valid YAML (no tags, anchors or aliases) (line 1, column 8)"),
    (json.dumps({**BASE, "serve": {"environment": "nowhere"}}), ", serve: `environment` 'nowhere' must be a profile "
     "whose secrets authenticate senders; valid: "),
], ids=["no-routes-key", "empty-routes", "duplicate", "anchor", "unknown-profile"])
def test_a_routes_file_of_the_wrong_shape_is_one_line(sandbox, tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        routes.load(path)
    assert str(caught.value).startswith(f"routes file '{path}'{message}"), str(caught.value)


def test_a_missing_routes_file_names_the_example(tmp_path):
    with pytest.raises(UsageError) as caught:
        routes.load(tmp_path / "routes.yaml")
    assert str(caught.value) == f"routes file '{tmp_path / 'routes.yaml'}' does not exist (an example: " \
        "params/routes.yaml)"
