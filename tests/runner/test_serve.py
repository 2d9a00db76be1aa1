"""`aias-runbooks serve`, end to end: a real serve process on a free port, real HTTP, real runs on the session's
sandbox, its PagerDuty emulator paged and resolved; refusals that start nothing; a storm that is one run; bounds
that queue and refuse; a killed serve whose next start files the partial report; SIGTERM that drains."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aias_runbooks import metrics, notify, paths
from aias_runbooks.alerts.model import Alert
from aias_runbooks.sandbox import alerts
from aias_runbooks.settings import load_environment

from ..helpers import CLI, ROOT, cli, free_port_base, runs, stop_serve, wait_for

RUN_S = 180   # a real run of a real runbook on a shared 2-core machine, with its page


class Serve:
    """`aias-runbooks serve` with the test's routes file, on a free port, into the test's output folder."""

    def __init__(self, tmp_path: Path, routes: str) -> None:
        self.routes = tmp_path / "routes.yaml"
        self.routes.write_text(routes)
        self.output = tmp_path / "output"
        self.metrics = tmp_path / "metrics"
        self.metrics.mkdir(exist_ok=True)
        self.port = free_port_base()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> Serve:
        self.lines = []
        self.proc = subprocess.Popen([*CLI, "serve", "--routes", str(self.routes), "--port", str(self.port),
                                      "--output", str(self.output), "--metrics-dir", str(self.metrics)],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        wait_for(lambda: f"serving on {self.url}" in self.lines or self.proc.poll() is not None, 60,
                 "serve to listen")
        assert self.proc.poll() is None, self.lines
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def post(self, body: dict | bytes, sender: str = "alertmanager", token: str | None = None,
             headers: dict | None = None) -> httpx.Response:
        token = token if token is not None else load_environment("sandbox").secret("alertmanager_token").reveal()
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(f"{self.url}/alerts/{sender}", content=data, timeout=30,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                          | (headers or {}))

    def audit(self) -> list[dict]:
        path = self.output / ".serve" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def decided(self, run_id: str, decision: str) -> dict | None:
        return next((a for a in self.audit() if a["run_id"] == run_id and a["decision"] == decision), None)

    def stop(self) -> None:
        stop_serve(self.proc)


@pytest.fixture
def serving(sandbox, tmp_path):
    """Start serve with a routes file (text); stopped (SIGTERM) after the test."""
    started: list[Serve] = []

    def start(routes: str) -> Serve:
        started.append(Serve(tmp_path, routes).start())
        return started[-1]
    yield start
    for serve in started:
        serve.stop()


def routes_yaml(routes: str, max_running: int = 2, max_queued: int = 20) -> str:
    return (f"serve: {{environment: sandbox, max_running: {max_running}, max_queued: {max_queued}, "
            "dedup_minutes: 30, max_body_kb: 1024}\n"
            "senders:\n  - {name: alertmanager, type: alertmanager, auth: bearer, secret: alertmanager_token}\n"
            "  - {name: pagerduty, type: pagerduty, auth: pagerduty-signature, secret: pagerduty_webhook_secret}\n"
            "  - {name: grafana, type: grafana, auth: grafana-hmac, secret: grafana_webhook_secret, "
            "timestamp_header: X-Grafana-Alerting-Timestamp}\n"
            f"routes:\n{routes}")


PAGED = """\
  - name: {tag}-errors
    match: {{alertname: HighErrorRate}}
    runbook: high-error-rate
    environment: sandbox
    parameters: {{window_minutes: "{{{{ (alert.window_minutes + 10) | clamp(10, 1440) }}}}"}}
    notify: {{pagerduty: true}}
  - name: {tag}-pool
    match: {{alertname: PostgresConnectionsExhausted}}
    runbook: database-connection-errors
    environment: sandbox
    notify: {{pagerduty: true}}
  - name: {tag}-webhooks
    match: {{alertname: StripeWebhookFailures}}
    runbook: stripe-webhook-failures
    environment: sandbox
    parameters: {{window_minutes: "{{{{ (alert.window_minutes + 10) | clamp(5, 10080) }}}}", signature_probe: false}}
    notify: {{pagerduty: true}}
"""


def health(name: str, samples: int = 10, interval_ms: int = 0, match: str = "ApiDown") -> str:
    return (f"  - {{name: {name}, match: {{alertname: {match}}}, runbook: health-check, environment: sandbox, "
            f"parameters: {{samples: {samples}, interval_ms: {interval_ms}}}}}\n")


def pagerduty_events(dedup_key: str) -> list[dict]:
    state = json.loads((paths.sandbox_dir() / "services.json").read_text())
    return [e for e in state.get("pagerduty_events", []) if e["dedup_key"] == dedup_key]


def group_id(body: dict) -> str:
    return Alert("alertmanager", "", "", body["groupKey"], "firing").group_id


def window_since(started: datetime) -> int:
    return Alert("alertmanager", "", "", "", "firing", starts_at=started).window_minutes()


@pytest.mark.parametrize(("name", "scenario_name", "route", "runbook"), [
    ("error-spike", "error-spike-after-deploy", "errors", "high-error-rate"),
    ("pool-exhaustion", "db-pool-exhaustion", "pool", "database-connection-errors"),
    ("webhook-failures", "webhook-endpoint-down", "webhooks", "stripe-webhook-failures"),
])
def test_an_alert_runs_its_runbook_pages_once_with_the_report_and_its_resolution_resolves(
        serving, scenario, name, scenario_name, route, runbook):
    tag = f"t{secrets.token_hex(3)}"
    serve = serving(routes_yaml(PAGED.format(tag=tag)))
    scenario(scenario_name)
    body = alerts.payload(name, alerts.scenario_since())
    window = window_since(alerts.scenario_since())

    sent = cli("sandbox", "alert", name, "--to", serve.url)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith(f"{alerts.RULES[name].alertname} firing: started run "), sent.stdout
    run_id = sent.stdout.split("run ", 1)[1].split()[0]
    wait_for(lambda: serve.decided(run_id, "filed"), RUN_S, f"run {run_id} filed")

    [record] = [r for r in runs(serve.output) if r["run_id"] == run_id]
    assert (record["runbook"], record["env"], record["status"]) == (runbook, "sandbox", "CRITICAL"), record
    assert record["incident"] == f"alert-{group_id(body)}", "the alert group is the report's incident id"
    verdict = json.loads((serve.output / record["report_dir"] / "verdict.json").read_text())
    if "window_minutes" in verdict.get("parameters", {}) and runbook != "database-connection-errors":
        assert verdict["parameters"]["window_minutes"] - 10 in (window, window + 1), "the alert's window"

    scraped = httpx.get(f"{serve.url}/metrics", timeout=10).text
    textfile = metrics.textfile_path(serve.metrics, runbook, "sandbox").read_text()
    for exposition in (scraped, textfile):
        status = [s for family in text_string_to_metric_families(exposition) for s in family.samples
                  if s.name == "aias_runbook_status" and s.labels == {"runbook": runbook, "environment": "sandbox"}]
        assert [s.value for s in status] == [2.0], exposition

    key = notify.dedup_key("sandbox", f"route/{tag}-{route}/{group_id(body)}")
    wait_for(lambda: pagerduty_events(key), 30, "the page")
    [trigger] = pagerduty_events(key)
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
    assert any(record["report_dir"] in link["href"] for link in trigger["links"]), trigger["links"]

    again = cli("sandbox", "alert", name, "--to", serve.url)
    assert f"duplicate run {run_id}" in again.stdout, again.stdout + again.stderr

    scenario("healthy")
    resolved = cli("sandbox", "alert", name, "--resolve", "--to", serve.url)
    assert resolved.returncode == 0 and "resolved: resolved" in resolved.stdout, resolved.stdout + resolved.stderr
    wait_for(lambda: len(pagerduty_events(key)) == 2, 30, "the resolve")
    time.sleep(0)   # nothing more may come: the counts below are final once serve is stopped
    serve.stop()
    assert [e["event_action"] for e in pagerduty_events(key)] == ["trigger", "resolve"]
    assert len(runs(serve.output)) == 1, "one run: the second firing was a duplicate, the resolve starts none"
    assert serve.proc.returncode == 0


def test_an_alert_resolved_while_its_run_goes_is_not_paged(serving, scenario):
    """The run still files its report, but a status the alert has already left is not paged; the next firing of
    the group is a new run, not a duplicate of the finished one."""
    tag = f"t{secrets.token_hex(3)}"
    route = health(f"{tag}-api", samples=60, interval_ms=200).replace("}}\n", "}, notify: {pagerduty: true}}\n")
    serve = serving(routes_yaml(route))
    scenario("api-down")
    body = alerts.payload("api-down", alerts.scenario_since())
    [firing] = serve.post(body).json()["alerts"]
    assert firing["decision"] == "started", firing
    [resolved] = serve.post(alerts.payload("api-down", alerts.scenario_since(), resolved=True)).json()["alerts"]
    assert resolved["decision"] == "resolved", resolved
    wait_for(lambda: serve.decided(firing["run_id"], "filed"), RUN_S, "the run filed")
    filed = serve.decided(firing["run_id"], "filed")
    assert filed["status"] == "CRITICAL" and "resolved while the run was going" in filed["reason"], filed
    assert pagerduty_events(notify.dedup_key("sandbox", f"route/{tag}-api/{group_id(body)}")) == []
    [again] = serve.post(body).json()["alerts"]
    assert again["decision"] == "started" and again["run_id"] != firing["run_id"], again


REFUSALS = health("probe", match="ApiDown") + """\
  - name: support
    match: {alertname: UserLocked}
    runbook: user-support
    environment: sandbox
    parameters: {user: "{{ labels.user }}"}
"""


def test_refused_posts_and_alerts_start_nothing_and_are_audited(serving):
    serve = serving(routes_yaml(REFUSALS))
    started = alerts.scenario_since()
    profile = load_environment("sandbox")
    canary = profile.secret("pagerduty_routing_key").reveal()

    wrong = serve.post(alerts.payload("api-down", started), token="not-the-token")
    assert wrong.status_code == 401 and "token" in wrong.json()["error"], wrong.text
    body = incident_webhook("PWRONG1", 7)
    forged = serve.post(body, sender="pagerduty", headers={"X-PagerDuty-Signature": "v1=" + "0" * 64})
    assert forged.status_code == 401 and "signature" in forged.json()["error"], forged.text
    unknown = serve.post(alerts.payload("api-down", started), sender="nagios")
    assert unknown.status_code == 404 and "alertmanager" in unknown.json()["error"], unknown.text
    big = alerts.payload("api-down", started)
    big["alerts"][0]["annotations"]["description"] = "x" * (2 * 1024 * 1024)
    huge = serve.post(big)
    assert huge.status_code == 413 and "max_body_kb" in huge.json()["error"], huge.text
    bad_json = serve.post(b'{"version": "4", "alerts": [')
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["error"], bad_json.text

    for value in ("../../etc/passwd", "x'; DROP TABLE users; --", "a" * 300, canary):
        body = alerts.payload("api-down", started, labels={"alertname": "UserLocked", "user": value})
        reply = serve.post(body)
        assert reply.status_code == 422, reply.text
        [alert] = reply.json()["alerts"]
        assert alert["decision"] == "refused" and alert["run_id"] is None and "user" in alert["reason"], alert
        assert "\n" not in alert["reason"] and canary not in reply.text

    unrouted = serve.post(alerts.payload("pool-exhaustion", started))
    [alert] = unrouted.json()["alerts"]
    assert alert["decision"] == "refused" and "no route matches" in alert["reason"], alert

    audit = serve.audit()
    assert [(a["decision"], a.get("status")) for a in audit[:5]] == [
        ("refused", 401), ("refused", 401), ("refused", 404), ("refused", 413), ("refused", 400)], audit
    assert [a["route"] for a in audit[5:]] == ["support"] * 4 + [None]
    assert {a["decision"] for a in audit[5:]} == {"refused"} and len(audit) == 10
    text = (serve.output / ".serve" / "audit.jsonl").read_text()
    assert "x" * 1000 not in text, "the body is never in the audit log"
    assert not [s for s in notify.secrets_of(profile) if s in text + "\n".join(serve.lines)]
    assert not runs(serve.output) and not list(serve.output.glob("20*")), "no run, no report folder"


def incident_webhook(incident_id: str, number: int, event_type: str = "incident.triggered") -> dict:
    """A PagerDuty v3 webhook about an incident on the "API Service" (the contract's example's shape)."""
    return {"event": {"id": secrets.token_hex(8), "event_type": event_type, "resource_type": "incident",
                      "occurred_at": datetime.now(timezone.utc).isoformat(), "agent": None, "client": None,
                      "data": {"id": incident_id, "type": "incident", "number": number, "status": "triggered",
                               "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                               "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                               "created_at": datetime.now(timezone.utc).isoformat(), "title": "API answers 5xx",
                               "incident_key": secrets.token_hex(16), "urgency": "high",
                               "service": {"id": "PF9KMXH", "summary": "API Service", "type": "service_reference"}}}}


def signed(body: dict) -> tuple[bytes, dict]:
    data = json.dumps(body).encode()
    secret = load_environment("sandbox").secret("pagerduty_webhook_secret").reveal()
    return data, {"X-PagerDuty-Signature": "v1=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()}


def test_a_pagerduty_incident_runs_its_runbook_and_gets_the_report_as_a_note(serving):
    """An incident PagerDuty opened (from an event on the sandbox's PagerDuty), its v3 webhook signed with the
    subscription's secret: the run is filed under the incident's number and its report posted as an incident note."""
    serve = serving(routes_yaml(health("api-incidents", match="'~(?i).*api.*'").replace("alertname", "service")))
    profile = load_environment("sandbox")
    dedup = f"test-{secrets.token_hex(6)}"
    event = {"routing_key": profile.secret("pagerduty_routing_key").reveal(), "event_action": "trigger",
             "dedup_key": dedup, "payload": {"summary": "API answers 5xx", "source": "api", "severity": "critical"}}
    assert httpx.post(profile.urls["pagerduty_events"] + "/v2/enqueue", json=event, timeout=10).status_code == 202
    state = json.loads((paths.sandbox_dir() / "services.json").read_text())
    [incident] = [i for i in state["pagerduty_incidents"] if i["dedup_key"] == dedup]

    data, headers = signed(incident_webhook(incident["id"], incident["number"]))
    reply = serve.post(data, sender="pagerduty", headers=headers)
    [alert] = reply.json()["alerts"]
    assert (reply.status_code, alert["decision"]) == (200, "started"), reply.text
    wait_for(lambda: serve.decided(alert["run_id"], "filed"), RUN_S, "the run filed")
    [record] = runs(serve.output)
    assert record["incident"] == str(incident["number"]) and record["runbook"] == "health-check"

    def notes() -> list[dict]:
        return json.loads((paths.sandbox_dir() / "services.json").read_text())["pagerduty_notes"].get(
            incident["id"], [])
    wait_for(notes, 30, "the incident note")
    [note] = notes()
    assert record["report_dir"] in note["content"], note
    assert f"health-check on sandbox: {record['status']}" in note["content"], note
    assert not [s for s in notify.secrets_of(profile) if s in note["content"]]


def test_a_grafana_notification_of_two_alerts_is_one_run(serving):
    """Grafana's contact point payload (the contract's example, its rule renamed), signed as hmacConfig with a
    timestamp signs it: both alerts are one group, so one run and one duplicate."""
    serve = serving(routes_yaml(health("probe")))
    contract = yaml.safe_load((ROOT / "tests" / "sandbox" / "contracts" / "grafana" / "webhook-contact-point.yaml")
                              .read_text())
    body = json.loads(contract["examples"]["firing"].replace("StripeWebhookFailures", "ApiDown"))
    data, stamp = json.dumps(body).encode(), str(int(time.time()))
    secret = load_environment("sandbox").secret("grafana_webhook_secret").reveal()
    signature = hmac.new(secret.encode(), stamp.encode() + b":" + data, hashlib.sha256).hexdigest()
    reply = serve.post(data, sender="grafana", headers={"X-Grafana-Alerting-Signature": signature,
                                                        "X-Grafana-Alerting-Timestamp": stamp})
    assert reply.status_code == 200, reply.text
    first, second = reply.json()["alerts"]
    assert (first["decision"], second["decision"]) == ("started", "duplicate") and first["run_id"] == second["run_id"]
    wait_for(lambda: serve.decided(first["run_id"], "filed"), RUN_S, "the run filed")
    assert [r["run_id"] for r in runs(serve.output)] == [first["run_id"]]
    replayed = serve.post(data, sender="grafana", headers={"X-Grafana-Alerting-Signature": signature,
                                                           "X-Grafana-Alerting-Timestamp": str(int(stamp) - 3600)})
    assert replayed.status_code == 401, replayed.text


def test_a_port_in_use_is_one_line_exit_3(sandbox, tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml(health("probe")))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "serve", "--routes", str(path), "--port", str(port), "--output",
                                 str(tmp_path / "output")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and result.stdout == "", result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line, line


def test_a_storm_of_one_group_is_one_run_and_many_groups_queue_then_429(serving):
    serve = serving(routes_yaml(health("probe", samples=10), max_running=2, max_queued=3))
    started = alerts.scenario_since()

    async def post_all(bodies: list[dict]) -> list[tuple[int, dict]]:
        token = load_environment("sandbox").secret("alertmanager_token").reveal()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                         connector=aiohttp.TCPConnector(limit=50)) as session:
            async def one(body: dict) -> tuple[int, dict]:
                async with session.post(f"{serve.url}/alerts/alertmanager", json=body) as reply:
                    return reply.status, await reply.json()
            return await asyncio.gather(*(one(b) for b in bodies))

    storm = [alerts.payload("api-down", started, labels={"instance": f"10.0.0.{n % 250}:{n}"}) for n in range(500)]
    began = time.monotonic()
    replies = asyncio.run(post_all(storm))
    took = time.monotonic() - began
    decisions = [a for _, body in replies for a in body["alerts"]]
    assert [d["decision"] for d in decisions].count("started") == 1, decisions[:3]
    assert {d["decision"] for d in decisions} == {"started", "duplicate"}
    assert len({d["run_id"] for d in decisions}) == 1 and len({d["fingerprint"] for d in decisions}) == 500
    (storm_run,) = {d["run_id"] for d in decisions}
    wait_for(lambda: serve.decided(storm_run, "filed"), RUN_S, "the storm's one run filed")
    print(f"500 posts of one group in {took:.2f} s")

    groups = []
    for n in range(50):
        body = alerts.payload("api-down", started)
        body["groupKey"] = f'{{}}:{{alertname="ApiDown", instance="10.1.0.{n}:443"}}'
        groups.append(body)
    replies = asyncio.run(post_all(groups))
    decisions = [(status, body["alerts"][0]) for status, body in replies]
    counts = {d: [a["decision"] for _, a in decisions].count(d) for d in ("started", "queued", "refused")}
    assert counts == {"started": 2, "queued": 3, "refused": 45}, counts
    assert {s for s, a in decisions if a["decision"] == "refused"} == {429}
    assert all("at capacity" in a["reason"] for _, a in decisions if a["decision"] == "refused")
    admitted = [a["run_id"] for _, a in decisions if a["decision"] in ("started", "queued")]
    wait_for(lambda: all(serve.decided(r, "filed") for r in admitted), 2 * RUN_S, "every queued run filed")

    filed = [r for r in runs(serve.output) if r["run_id"] in admitted]
    assert len(filed) == 5 and [r["error"] for r in filed] == [None] * 5, filed
    spans = [(datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"])) for r in filed]
    most = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert most <= 2, f"{most} runs at once; max_running is 2"
    refused = [a for a in serve.audit() if a["decision"] == "refused"]
    assert len(refused) == 45 and all("at capacity" in a["reason"] for a in refused)
    assert len(runs(serve.output)) == 6, "the storm's one run and the five admitted"


def test_a_killed_serve_leaves_an_orphan_that_its_next_start_files(serving):
    serve = serving(routes_yaml(health("slow", samples=200, interval_ms=100)))
    reply = serve.post(alerts.payload("api-down", alerts.scenario_since()))
    [alert] = reply.json()["alerts"]
    assert alert["decision"] == "started", alert
    run_id = alert["run_id"]
    notebook = serve.output / ".work" / run_id / "notebook.ipynb"
    wait_for(notebook.is_file, 60, "the run's notebook under way")

    serve.proc.kill()
    serve.proc.wait()
    wait_for(lambda: not _runner_alive(serve.output / ".work" / run_id), 30, "the runner to die with serve")
    assert not runs(serve.output), "nothing filed yet: the run was cut short"

    serve.start()
    assert any(line.startswith(f"filed orphan run {run_id}") for line in serve.lines), serve.lines
    [record] = runs(serve.output)
    assert record["run_id"] == run_id and record["runbook"] == "health-check"
    assert record["error"] and "stopped before the run finished" in record["error"], record
    assert (serve.output / record["report_dir"] / "report.html").is_file()
    assert not (serve.output / ".work" / run_id).exists()
    assert serve.decided(run_id, "orphan-filed")


def _runner_alive(workspace: Path) -> bool:
    """Whether the run's runner still holds its workspace's lock."""
    fd = os.open(workspace / "run.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def test_sigterm_stops_taking_alerts_lets_running_runs_file_and_drops_the_queue(serving):
    serve = serving(routes_yaml(health("slow", samples=30, interval_ms=100), max_running=1, max_queued=2))
    started = alerts.scenario_since()
    ids = []
    for n in range(3):
        body = alerts.payload("api-down", started)
        body["groupKey"] = f'{{}}:{{alertname="ApiDown", instance="10.2.0.{n}:443"}}'
        [alert] = serve.post(body).json()["alerts"]
        ids.append((alert["decision"], alert["run_id"]))
    assert [d for d, _ in ids] == ["started", "queued", "queued"], ids
    running = ids[0][1]
    wait_for((serve.output / ".work" / running / "notebook.ipynb").is_file, 60, "the run under way")

    assert httpx.get(f"{serve.url}/healthz", timeout=10).text == "ok\n"
    serve.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: any(line.startswith("stopping:") for line in serve.lines), 30, "serve to start draining")
    late = serve.post(alerts.payload("error-spike", started))
    assert late.status_code == 503 and "stopping" in late.json()["error"], late.text
    assert httpx.get(f"{serve.url}/healthz", timeout=10).status_code == 503
    assert serve.proc.wait(RUN_S) == 0, serve.lines

    [record] = runs(serve.output)
    assert record["run_id"] == running and record["error"] is None, "the running run finished whole"
    dropped = [a["run_id"] for a in serve.audit() if a["decision"] == "dropped"]
    assert dropped == [ids[1][1], ids[2][1]]
    assert not list((serve.output / ".serve" / "running").iterdir()), "nothing left for a next start to file"


def test_a_bad_routes_file_is_one_line_exit_3_and_nothing_is_served(sandbox, tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(routes_yaml(health("probe").replace("health-check", "no-such-runbook")))
    result = subprocess.run([*CLI, "serve", "--routes", str(path), "--port", str(free_port_base()), "--output",
                             str(tmp_path / "output")], capture_output=True, text=True, timeout=60,
                            env=os.environ.copy())
    assert result.returncode == 3 and result.stdout == "", result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "route 1 ('probe')" in line and "no-such-runbook" in line, line
    assert not (tmp_path / "output").exists()


def test_sandbox_alert_names_the_valid_alerts(sandbox):
    result = cli("sandbox", "alert", "disk-full")
    assert result.returncode == 3 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "disk-full" in line and all(name in line for name in alerts.RULES), line


def test_the_sandbox_posts_alertmanagers_payload_and_fingerprint():
    """The payload has the keys and types of Alertmanager's webhook v4 (tests/sandbox/contracts/alertmanager/), and
    the fingerprint is prometheus/common's labelSetToFingerprint (its TestMetricToFingerprint vectors)."""
    contract = yaml.safe_load((ROOT / "tests" / "sandbox" / "contracts" / "alertmanager" / "webhook-v4.yaml")
                              .read_text())
    example = json.loads(contract["examples"]["firing"])
    for resolved in (False, True):
        body = alerts.payload("error-spike", datetime(2026, 12, 7, 11, 48, tzinfo=timezone.utc), resolved)
        assert {k: type(v) for k, v in body.items()} == {k: type(v) for k, v in example.items()}
        assert {k: type(v) for k, v in body["alerts"][0].items()} == \
            {k: type(v) for k, v in example["alerts"][0].items()}
        assert body["version"] == contract["version"] and body["status"] == ("resolved" if resolved else "firing")
        assert body["alerts"][0]["startsAt"] == "2026-12-07T11:48:00.000Z"
        assert (body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z") is not resolved
    assert int(alerts.fingerprint({}), 16) == 14695981039346656037
    assert int(alerts.fingerprint({"name": "garland, briggs", "fear": "love is not enough"}), 16) == \
        5799056148416392346
