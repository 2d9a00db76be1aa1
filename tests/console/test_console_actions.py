"""The console's compare page and operator actions over real HTTP, against a real serve (tests/console/server.py):
compare two real runs, rerun with edited parameters (a real run against the sandbox, filed and read back), run a
schedule entry now, and the approvals pages' refusals (wrong role, self-approval, bad CSRF token)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aias_runbooks.actions import approvals
from aias_runbooks.actions.approvals import Request
from aias_runbooks.console.compare import NotComparable, compare
from aias_runbooks.findings import Finding

from ..helpers import cli, leaked_longer_than, wait_for
from .server import LEAKING, Console, csrf_of, filed, leaked_sessions

STARTED = re.compile(r"^/console/started/(\d{8}-\d{6}-[0-9a-f]{4})$")


def real_run(console: Console, *args: str) -> dict:
    """`aias-runbooks run health-check ARGS` filed into the console's archive; its verdict."""
    result = cli("run", "health-check", "-p", "samples=10", "-p", "interval_ms=20", *args,
                 "--output", str(console.output))
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr
    report = next(line.split("report: ", 1)[1] for line in result.stdout.splitlines() if "report: " in line)
    return json.loads((Path(report).parent / "verdict.json").read_text())


def group(page: str, name: str) -> str:
    """The HTML of the compare page's section for one group (new, resolved, changed, same)."""
    found = re.search(rf'<section class="group group-{name}" id="{name}">(.*?)</section>', page, re.S)
    assert found, f"no {name} section in the page"
    return found.group(1)


def started_run(answer) -> str:
    """The run id of a POST that started a run: it redirects (303) to that run's started page."""
    assert answer.status_code == 303, (answer.status_code, answer.text)
    found = STARTED.match(answer.headers["Location"])
    assert found, answer.headers["Location"]
    return found.group(1)


def verdict_of(console: Console, record: dict) -> dict:
    return json.loads((console.archive / record["report_dir"] / "verdict.json").read_text())


def started_files(console: Console) -> list[Path]:
    return sorted((console.output / ".console" / "runs").glob("*.json"))


# -- compare ----------------------------------------------------------------------------------------------------

def test_compare_of_a_healthy_run_and_an_api_down_run_shows_the_new_finding(sandbox, scenario, console):
    healthy = real_run(console)
    scenario("api-down")
    down = real_run(console)
    assert healthy["status"] == "OK" and down["status"] == "CRITICAL"
    with console.client("viewer") as client:
        page = client.get("/console/compare", params={"a": healthy["run_id"], "b": down["run_id"]})
    assert page.status_code == 200, page.text
    new = group(page.text, "new")
    assert re.search(r'<tr class="new">\s*<td><strong class="marker">new</strong>', new)
    assert "API_DOWN" in new
    assert "API_DOWN" not in group(page.text, "resolved")
    resolved_codes = {f["code"] for f in healthy["findings"]}
    assert all(code in group(page.text, "resolved") for code in resolved_codes)
    assert '<strong class="marker">resolved</strong>' in group(page.text, "resolved")


def test_a_compare_across_two_runbooks_is_refused_in_one_line(console):
    one = console.file_report("health-check")
    other = console.file_report("monitoring", findings=[Finding("MONITOR_OK", "OK", "All five metrics in range.")])
    with console.client("viewer") as client:
        answer = client.get("/console/compare", params={"a": one["run_id"], "b": other["run_id"]})
        unknown = client.get("/console/compare", params={"a": one["run_id"], "b": "20200101-000000-abcd"})
        malformed = client.get("/console/compare", params={"a": "../../etc", "b": one["run_id"]})
    assert answer.status_code == 400
    assert answer.text.strip() == ("runs of two runbooks (health-check and monitoring) cannot be compared; valid: two "
                                   "runs of one runbook")
    assert unknown.status_code == 404 and len(unknown.text.strip().splitlines()) == 1
    assert malformed.status_code == 400 and "query parameter a" in malformed.text


def test_a_changed_finding_shows_both_numbers_and_the_delta(console):
    def latency(p95: float, severity: str) -> Finding:
        return Finding("API_LATENCY", severity, f"P95 latency {p95} ms.", {"url": "http://api/healthz", "p95_ms": p95})
    a = console.file_report(findings=[latency(120.0, "OK")])
    b = console.file_report(findings=[latency(1450.0, "CRITICAL")])
    with console.client("viewer") as client:
        page = client.get("/console/compare", params={"a": a["run_id"], "b": b["run_id"]})
    changed = group(page.text, "changed")
    assert '<strong class="marker">changed</strong>' in changed and "severity, title" in changed
    assert "120" in changed and "1450" in changed and "+1330" in changed


def test_findings_are_told_apart_by_what_they_name():
    def verdict(*findings: dict) -> dict:
        return {"runbook": "stripe-webhook-failures", "run_id": "r", "findings": list(findings)}
    down = {"code": "INTEGRATION_DOWN", "severity": "CRITICAL", "title": "Stripe is down.",
            "evidence": {"subsystem": "stripe", "failures": 3}}
    resend = down | {"title": "Resend is down.", "evidence": {"subsystem": "resend", "failures": 1}}
    twice = down | {"title": "Stripe is down again."}
    result = compare(verdict(down), verdict(resend, down, twice))
    assert [(r.code, r.culprit) for r in result.new] == [("INTEGRATION_DOWN", "subsystem=resend"),
                                                         ("INTEGRATION_DOWN", "subsystem=stripe #2")]
    assert [r.culprit for r in result.same] == ["subsystem=stripe"] and not result.resolved
    for broken in ({"runbook": "stripe-webhook-failures"}, "not a verdict"):
        with pytest.raises(NotComparable, match="valid: two filed runs of one runbook"):
            compare(verdict(down), broken)


# -- rerun ------------------------------------------------------------------------------------------------------

def test_a_rerun_with_an_edited_parameter_is_filed_with_it(sandbox, console):
    source = console.file_report("health-check", parameters={"environment": "sandbox", "samples": 20,
                                                              "interval_ms": 100, "timeout_s": 0.5})
    with console.client("operator") as client:
        form = client.get(f"/console/runs/{source['run_id']}/rerun")
        assert form.status_code == 200, form.text
        assert re.search(r'<label for="p-samples">', form.text)
        assert re.search(r'id="p-samples" name="samples" type="number" step="1" value="20"', form.text)
        assert 'name="operator"' not in form.text and 'name="apply"' not in form.text
        answer = client.post(f"/console/runs/{source['run_id']}/rerun",
                             data={"csrf": csrf_of(form.text), "environment": "sandbox", "samples": "12",
                                   "interval_ms": "50", "timeout_s": "0.5", "incident": "INC-77",
                                   "operator": "mallory", "apply": "true"})
        run_id = started_run(answer)
        page = client.get(f"/console/started/{run_id}")
    assert page.status_code == 200 and run_id in page.text
    record = filed(console, run_id)
    prov = verdict_of(console, record)["provenance"]
    assert prov["parameters"]["samples"] == 12 and prov["parameters"]["interval_ms"] == 50
    assert prov["operator"] == console.names["operator"]          # the console user, never the form's field
    assert prov["parameters"].get("apply") in (None, False)
    assert record["incident"] == "INC-77"
    (audited,) = [r for r in console.audit() if r["action"] == "rerun"]
    assert audited["run_id"] == run_id and audited["source_run"] == source["run_id"]
    assert audited["user"] == console.names["operator"] and audited["outcome"] == "started"


def test_a_rerun_with_a_bad_value_is_refused_in_one_line_and_nothing_starts(console):
    source = console.file_report("health-check", parameters={"samples": 20})
    with console.client("operator") as client:
        csrf = console.csrf(client, f"/console/runs/{source['run_id']}/rerun")
        answer = client.post(f"/console/runs/{source['run_id']}/rerun",
                             data={"csrf": csrf, "environment": "sandbox", "samples": "many"})
        no_env = client.post(f"/console/runs/{source['run_id']}/rerun",
                             data={"csrf": csrf, "environment": "nowhere", "samples": "5"})
    assert answer.status_code == 400
    assert answer.text.strip() == "health-check: parameter 'samples' must be an integer, got 'many'"
    assert no_env.status_code == 400 and no_env.text.startswith("unknown environment 'nowhere'; valid: ")
    assert len(no_env.text.strip().splitlines()) == 1
    assert started_files(console) == []
    assert [r["outcome"] for r in console.audit() if r["action"] == "rerun"] == ["refused", "refused"]


def test_a_viewer_cannot_rerun(console):
    source = console.file_report("health-check")
    with console.client("viewer") as client:
        form = client.get(f"/console/runs/{source['run_id']}/rerun")
        csrf = console.csrf(client)
        answer = client.post(f"/console/runs/{source['run_id']}/rerun", data={"csrf": csrf, "samples": "5"})
    assert form.status_code == 403 and answer.status_code == 403
    assert "needs the operator role" in answer.text
    assert started_files(console) == []


def test_a_rerun_without_the_csrf_token_is_refused(console):
    source = console.file_report("health-check")
    with console.client("operator") as client:
        answer = client.post(f"/console/runs/{source['run_id']}/rerun", data={"csrf": "forged", "samples": "5"})
    assert answer.status_code == 403 and "CSRF" in answer.text
    assert started_files(console) == []


# -- schedules --------------------------------------------------------------------------------------------------

def test_a_schedule_entry_runs_now_and_is_filed_with_its_name(sandbox, console):
    with console.client("viewer") as client:
        listed = client.get("/console/schedules")
    assert listed.status_code == 200 and "health-5min" in listed.text
    assert "Run now" not in listed.text                       # a viewer sees the entries, not the button
    with console.client("operator") as client:
        page = client.get("/console/schedules")
        assert 'action="/console/schedules/health-5min/run"' in page.text
        csrf = csrf_of(page.text)
        unknown = client.post("/console/schedules/no-such-entry/run", data={"csrf": csrf})
        run_id = started_run(client.post("/console/schedules/health-5min/run", data={"csrf": csrf}))
    assert unknown.status_code == 404
    assert unknown.text.startswith("no entry 'no-such-entry' in the schedules file; valid: health-5min")
    record = filed(console, run_id)
    assert record["entry"] == "health-5min" and record["runbook"] == "health-check"
    audited = [r for r in console.audit() if r["action"] == "schedule-run"]
    assert [(r["entry"], r["run_id"]) for r in audited] == [("health-5min", run_id)]


# -- approvals --------------------------------------------------------------------------------------------------

def pending_request(console: Console, requested_by: str) -> Request:
    """An approval request as a dry run files it (<output>/approvals/<id>.json), asked by `requested_by`."""
    now = datetime.now(timezone.utc)
    source = console.file_report("database-connection-errors", operator=requested_by)
    request = Request(id="apr-0123456789ab", action="terminate_leaked_sessions", runbook="database-connection-errors",
                      env="sandbox", incident=None, run_id=source["run_id"], requested_by=requested_by,
                      reason="DB_CONNECTION_LEAK: 8 session(s) idle in transaction <b>for</b> more than 60 s.",
                      plan=[{"pid": 4242, "backend_start": "2026-12-07T10:00:00+00:00", "application": "<script>x"}],
                      plan_hash="ab" * 32, created_at=now.isoformat(timespec="seconds"),
                      expires_at=(now + timedelta(minutes=60)).isoformat(timespec="seconds"), status="pending")
    folder = console.output / "approvals"
    folder.mkdir(exist_ok=True)
    (folder / f"{request.id}.json").write_text(json.dumps(asdict(request)))
    return request


def test_the_approvals_pages_show_the_exact_plan_and_refuse_the_requester(console):
    request = pending_request(console, console.names["approver"])   # bob asked: bob may not approve it
    path = f"/console/approvals/{request.id}"
    with console.client("viewer") as client:
        listed = client.get("/console/approvals")
        shown = client.get(path)
    assert listed.status_code == 200 and request.id in listed.text
    assert shown.status_code == 200 and request.plan_hash in shown.text and "4242" in shown.text
    assert "&lt;script&gt;x" in shown.text and "<script>x" not in shown.text
    assert f'action="{path}/approve"' not in shown.text     # a viewer has no approve button
    with console.client("approver") as client:
        own = client.get(path)
        assert f'action="{path}/approve"' not in own.text and "another approver must approve it" in own.text
        answer = client.post(f"{path}/approve", data={"csrf": console.csrf(client, path)})
    assert answer.status_code == 403
    assert answer.text.strip() == (f"{request.id} was requested by bob: the requester cannot approve their own "
                                   "request; someone else must")
    assert json.loads((console.output / "approvals" / f"{request.id}.json").read_text())["status"] == "pending"


def test_approving_needs_the_approver_role_and_the_csrf_token(console):
    request = pending_request(console, console.names["operator"])   # alice asked
    path = f"/console/approvals/{request.id}"
    with console.client("operator") as client:
        as_operator = client.post(f"{path}/approve", data={"csrf": console.csrf(client, path)})
        early_apply = client.post(f"{path}/apply", data={"csrf": console.csrf(client, path)})
    with console.client("approver") as client:
        page = client.get(path)
        assert f'action="{path}/approve"' in page.text
        forged = client.post(f"{path}/approve", data={"csrf": "forged"})
        unknown = client.post("/console/approvals/apr-ffffffffffff/approve", data={"csrf": csrf_of(page.text)})
        approved = client.post(f"{path}/approve", data={"csrf": csrf_of(page.text)})
        again = client.post(f"{path}/approve", data={"csrf": csrf_of(page.text)})
    assert as_operator.status_code == 403 and "needs the approver role" in as_operator.text
    assert early_apply.status_code == 409 and early_apply.text.strip() == (
        f"request {request.id} is pending; valid: only an approved request is applied")
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert unknown.status_code == 404
    assert approved.status_code == 303 and approved.headers["Location"] == path
    assert again.status_code == 403 and "already approved by bob" in again.text
    stored = json.loads((console.output / "approvals" / f"{request.id}.json").read_text())
    assert stored["status"] == "approved" and stored["approved_by"] == "bob"
    audit = [json.loads(line) for line in (console.output / "audit.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["request"], r["via"]) for r in audit] == [("approved", request.id, "console")]
    assert [r["outcome"] for r in console.audit() if r["action"] == "approve"] == ["approved", "refused"]
    with console.client("viewer") as client:
        shown = client.get(path)
        assert "approved" in shown.text and "by bob" in shown.text
        assert f'action="{path}/apply"' not in shown.text   # a viewer has no apply button
        refused = client.post(f"{path}/apply", data={"csrf": console.csrf(client, path)})
    assert refused.status_code == 403 and "needs the operator role" in refused.text


def test_an_approved_request_is_applied_from_the_console(sandbox, scenario, console):
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
    dry = cli("run", "database-connection-errors", "--env", "sandbox-four-eyes", "-p", "leak_min_idle_s=2",
              "-p", f"only_application={LEAKING}", "--operator", console.names["operator"],
              "--output", str(console.output))
    assert dry.returncode in (1, 2), dry.stdout + dry.stderr
    (request,) = approvals.requests(console.output, "pending")
    path = f"/console/approvals/{request.id}"
    with console.client("approver") as client:
        assert client.post(f"{path}/approve", data={"csrf": console.csrf(client, path)}).status_code == 303
    with console.client("operator") as client:
        page = client.get(path)
        assert f'action="{path}/apply"' in page.text
        run_id = started_run(client.post(f"{path}/apply", data={"csrf": csrf_of(page.text)}))
    record = filed(console, run_id)
    prov = verdict_of(console, record)["provenance"]
    assert prov["parameters"]["apply"] is True and prov["parameters"]["approval"] == request.id
    assert prov["parameters"]["only_application"] == LEAKING and prov["operator"] == console.names["operator"]
    applied = approvals.load(request.id, console.output)
    assert (applied.status, applied.applied_by, applied.apply_run_id) == ("applied", "alice", run_id)
    wait_for(lambda: leaked_sessions() == 0, 30, "the leaked sessions to be gone")
    with console.client("viewer") as client:
        shown = client.get(path).text
    phases = [r["phase"] for r in approvals_audit(console, request.id)]
    assert phases[:2] == ["requested", "approved"] and "finished" in phases
    assert all(phase in shown for phase in ("requested", "approved", "finished"))
    with console.client("operator") as client:
        again = client.post(f"{path}/apply", data={"csrf": console.csrf(client, path)})
    assert again.status_code == 409 and again.text.strip() == (
        f"request {request.id} is applied; valid: only an approved request is applied")


def approvals_audit(console: Console, request_id: str) -> list[dict]:
    lines = (console.output / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("request") == request_id]
