"""Paging out, through the real `schedule run-due` on the sandbox and its PagerDuty emulator: a CRITICAL entry opens
exactly one incident (its dedup_key the entry's, the report linked), staying CRITICAL sends nothing more, recovering
resolves it once; UNKNOWN pages only when asked; an event PagerDuty refuses (400) or throttles (429) is "not
delivered" and retried at the next run; a profile without the routing key is refused before anything runs; Slack's
Block Kit message carries the same report link as a button; serve's incident notes reach the incident."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from aias_runbooks import notify
from aias_runbooks.sandbox.emulators.hosted.state import services_state
from aias_runbooks.settings import load_environment

from ..helpers import FIXTURE_NOTEBOOKS, run_due, runs

BASE = "https://runbooks.example.test/reports"   # the profile's report_base_url (AIAS_SANDBOX_REPORT_BASE_URL)


def write_entries(tmp_path: Path, *entries: tuple[str, str, str, str]) -> Path:
    """A schedules file of (name, runbook, parameters, notify) entries, every 5 minutes on the sandbox."""
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n" + "".join(
        f"  - name: {name}\n    cron: '*/5 * * * *'\n    runbook: {runbook}\n    environment: sandbox\n"
        f"    parameters: {parameters}\n    notify: {notice}\n" for name, runbook, parameters, notice in entries))
    return path


def events_for(sandbox: Path, name: str) -> list[dict]:
    """What the sandbox's PagerDuty accepted for this entry's incident."""
    key = notify.dedup_key("sandbox", name)
    return [e for e in state_of(sandbox).get("pagerduty_events", []) if e["dedup_key"] == key]


def incidents_for(sandbox: Path, name: str) -> list[dict]:
    key = notify.dedup_key("sandbox", name)
    return [i for i in state_of(sandbox).get("pagerduty_incidents", []) if i["dedup_key"] == key]


def slack_for(sandbox: Path, name: str) -> list[dict]:
    return [m for m in state_of(sandbox).get("slack_messages", []) if m["text"].startswith(f"{name}: ")]


def state_of(sandbox: Path) -> dict:
    return json.loads((sandbox / "services.json").read_text())


def report_of(proc) -> Path:
    return Path(proc.stdout.split("report: ", 1)[1].split()[0])


def link_of(report: Path) -> str:
    return f"{BASE}/{report.parent.parent.name}/{report.parent.name}/report.html"


@pytest.fixture
def name() -> str:
    return f"pd-{secrets.token_hex(4)}"


def test_a_critical_entry_pages_once_and_its_recovery_resolves_once(sandbox, scenario, tmp_path, name):
    schedules = write_entries(tmp_path, (name, "health-check", "{samples: 10, interval_ms: 0}",
                                         "{slack: true, pagerduty: true}"))
    output, env = tmp_path / "output", os.environ | {"AIAS_SANDBOX_REPORT_BASE_URL": BASE}

    first = run_due(schedules, output, "2026-11-26T20:00:10Z", env=env)
    assert (first.returncode, first.stderr) == (0, ""), first.stdout + first.stderr
    assert events_for(sandbox, name) == [] and slack_for(sandbox, name) == [], "OK pages nobody"

    scenario("api-down")
    down = run_due(schedules, output, "2026-11-26T20:05:10Z", env=env)
    assert (down.returncode, down.stderr) == (2, ""), down.stdout + down.stderr
    [trigger] = events_for(sandbox, name)
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == f"aias-runbooks/sandbox/{name}"
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "sandbox"
    assert trigger["payload"]["summary"].startswith(f"{name}: health-check on sandbox is CRITICAL: API_DOWN")
    assert trigger["links"] == [{"href": link_of(report_of(down)), "text": "Report: health-check on sandbox"}]
    assert "CRITICAL API_DOWN" in trigger["payload"]["custom_details"]["top_findings"][0]
    [incident] = incidents_for(sandbox, name)
    assert incident["status"] == "triggered"
    [message] = slack_for(sandbox, name)
    assert message["shown"][0] == f"{name}: health-check on sandbox went OK -> CRITICAL: API_DOWN"
    assert {"*Status*\nOK -&gt; CRITICAL", "*Runbook*\nhealth-check", "*Environment*\nsandbox"} <= set(message["shown"])
    assert message["shown"][-1] == f"Open the report <{link_of(report_of(down))}>", "a button to the report"
    assert message["text"].splitlines()[-1] == f"Report: {link_of(report_of(down))}", "the fallback text too"

    again = run_due(schedules, output, "2026-11-26T20:10:10Z", env=env)
    assert (again.returncode, again.stderr) == (2, "")
    assert len(events_for(sandbox, name)) == 1 and len(slack_for(sandbox, name)) == 1, "still CRITICAL: nothing new"

    scenario("healthy")
    back = run_due(schedules, output, "2026-11-26T20:15:10Z", env=env)
    assert (back.returncode, back.stderr) == (0, ""), back.stdout + back.stderr
    trigger_again, resolve = events_for(sandbox, name)
    assert trigger_again == trigger
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
    assert "payload" not in resolve and "links" not in resolve, "a resolve carries only the key"
    [incident] = incidents_for(sandbox, name)
    assert incident["status"] == "resolved", "one incident, opened and resolved"
    assert len(slack_for(sandbox, name)) == 2
    state = json.loads((output / ".schedule" / f"{name}.json").read_text())
    assert state["notified"] == {"slack": "OK", "pagerduty": "OK"}

    quiet = run_due(schedules, output, "2026-11-26T20:20:10Z", env=env)
    assert quiet.returncode == 0 and len(events_for(sandbox, name)) == 2, "resolved once"
    assert len(runs(output)) == 5


def test_unknown_pages_only_when_asked_and_links_the_report_file_without_a_base_url(sandbox, tmp_path, name):
    """paging-check with crash=1 fails before any finding (UNKNOWN), quoting the profile's secrets (the routing key
    among them) in its error: the entry with {unknown: true} pages (severity error), the one without does not; no
    report_base_url, so the link is the report's file; no secret reaches the page."""
    asked, not_asked = f"{name}-u", f"{name}-c"
    schedules = write_entries(tmp_path, (asked, "paging-check", "{crash: 1}", "{pagerduty: {unknown: true}}"),
                              (not_asked, "paging-check", "{crash: 1}", "{pagerduty: true}"))
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    result = run_due(schedules, tmp_path / "output", "2026-11-26T20:00:10Z", env=env)
    assert result.returncode == 3 and result.stderr.count("notification") == 0, result.stdout + result.stderr
    assert events_for(sandbox, not_asked) == [], "UNKNOWN does not page unless asked"
    [trigger] = events_for(sandbox, asked)
    assert trigger["payload"]["severity"] == "error" and " is UNKNOWN" in trigger["payload"]["summary"]
    report = next(Path(line.split("report: ")[1]) for line in result.stdout.splitlines() if line.startswith(asked))
    assert trigger["links"][0]["href"] == report.as_uri()
    profile = load_environment("sandbox")
    sent = json.dumps(trigger)
    for secret in notify.secrets_of(profile):
        assert secret not in sent


def test_a_refused_or_throttled_page_is_not_delivered_and_is_retried(sandbox, scenario, tmp_path, name):
    """PagerDuty answers 400 (a routing key of the wrong length, then one that is not the integration's) and 429
    (throttled): each is one stderr line, run-due's exit code stays the run's, and the next run tries again."""
    schedules = write_entries(tmp_path, (name, "health-check", "{samples: 5, interval_ms: 0}", "{pagerduty: true}"))
    output = tmp_path / "output"
    scenario("api-down")

    short = run_due(schedules, output, "2026-11-26T20:00:10Z",
                    env=os.environ | {"AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY": "k" * 20})
    assert short.returncode == 2, short.stdout + short.stderr
    assert short.stderr.splitlines() == [
        f"  {name}: pagerduty notification (OK -> CRITICAL) not delivered: PagerDuty answered HTTP 400 (invalid "
        "event: Length of 'routing_key' is incorrect (should be 32 characters)); retried at the next run"]
    other = run_due(schedules, output, "2026-11-26T20:05:10Z",
                    env=os.environ | {"AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY": secrets.token_hex(16)})
    assert "PagerDuty answered HTTP 400 (invalid event: Invalid routing key); retried" in other.stderr
    assert "notified" not in json.loads((output / ".schedule" / f"{name}.json").read_text())

    with services_state(sandbox) as state:
        state["pagerduty_throttled"] = True
    try:
        throttled = run_due(schedules, output, "2026-11-26T20:10:10Z")
    finally:
        with services_state(sandbox) as state:
            state["pagerduty_throttled"] = False
    assert "pagerduty notification (OK -> CRITICAL) not delivered: PagerDuty answered HTTP 429; retried" \
        in throttled.stderr
    assert events_for(sandbox, name) == []

    told = run_due(schedules, output, "2026-11-26T20:15:10Z")
    assert (told.returncode, told.stderr) == (2, ""), told.stdout + told.stderr
    assert [e["event_action"] for e in events_for(sandbox, name)] == ["trigger"]
    assert json.loads((output / ".schedule" / f"{name}.json").read_text())["notified"] == {"pagerduty": "CRITICAL"}
    for proc in (short, other, throttled, told):
        for secret in notify.secrets_of(load_environment("sandbox")):
            assert secret not in proc.stdout + proc.stderr


BAD = [
    ("{pagerduty: yes-please}", {}, "`notify.pagerduty` must be true, false or {unknown: true}"),
    ("{pagerduty: {unknown: true, low: true}}", {}, "`notify.pagerduty` must be true, false or {unknown: true}"),
    ("{pagerduty: true}", {"AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY": ""},
     "`notify` needs pagerduty_routing_key: pagerduty_routing_key is not configured for environment 'sandbox'"),
    ("{pagerduty: true}", {"AIAS_SANDBOX_REPORT_BASE_URL": "ftp://reports.example.test"},
     "environment 'sandbox': report_base_url 'ftp://reports.example.test' is not valid; valid: an http(s) URL"),
]


@pytest.mark.parametrize("notice, extra, message", BAD, ids=["value", "key", "no-routing-key", "base-url"])
def test_a_bad_pagerduty_setting_is_one_line_and_exit_3_before_anything_runs(sandbox, tmp_path, notice, extra,
                                                                             message):
    schedules = write_entries(tmp_path, ("health-5min", "health-check", "{}", notice))
    output = tmp_path / "output"
    result = run_due(schedules, output, "2026-11-26T20:00:00Z", env=os.environ | extra)
    assert result.returncode == 3 and result.stdout == "", result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (output / "catalog").exists() and not (output / ".schedule").exists()


def test_an_incident_note_reaches_the_incident(sandbox, monkeypatch):
    """serve's write-back: a note on the incident a page opened, its text redacted; an incident PagerDuty does not
    know, or a token it does not take, is one line saying why not."""
    profile = load_environment("sandbox")
    entry = f"route/pd-note/{secrets.token_hex(3)}"
    told, problems = notify.tell(entry, "health-check", "sandbox", notify.Notify(pagerduty=True), {}, "CRITICAL",
                                 None, profile)
    assert (told, problems) == ({"pagerduty": "CRITICAL"}, [])
    [incident] = incidents_for(sandbox, entry)
    token = profile.secret("admin_token").reveal()
    assert notify.post_incident_note(profile, incident["id"], f"Report: {BASE}/x/report.html\ntoken {token}") is None
    [note] = state_of(sandbox)["pagerduty_notes"][incident["id"]]
    assert note["content"] == f"Report: {BASE}/x/report.html\ntoken [REDACTED]"
    assert note["user"]["summary"] == "AIAS Runbooks"
    assert notify.post_incident_note(profile, "Q0NOTANINCIDENT", "hello") == \
        "PagerDuty's REST API answered HTTP 404 (Not Found)"
    assert notify.post_incident_note(profile, "../users", "hello") == \
        "no incident note: '../users' is not a PagerDuty incident id (letters and digits)"
    monkeypatch.setenv("AIAS_SANDBOX_PAGERDUTY_API_TOKEN", "not-the-token")
    refused = notify.post_incident_note(load_environment("sandbox"), incident["id"], "hello")
    assert refused == "PagerDuty's REST API answered HTTP 401 (Unauthorized)"
    assert len(state_of(sandbox)["pagerduty_notes"][incident["id"]]) == 1


TRANSITIONS = [   # (unknown: true?, status last delivered, status now, event due)
    (False, "OK", "CRITICAL", "trigger"), (False, "WARNING", "CRITICAL", "trigger"),
    (False, "CRITICAL", "CRITICAL", None), (False, "CRITICAL", "UNKNOWN", None),
    (False, "CRITICAL", "WARNING", "resolve"), (False, "CRITICAL", "OK", "resolve"),
    (False, "OK", "UNKNOWN", None), (False, "OK", "WARNING", None), (False, "CRITICAL", "NOT RUN", None),
    (True, "OK", "UNKNOWN", "trigger"), (True, "UNKNOWN", "CRITICAL", None), (True, "CRITICAL", "UNKNOWN", None),
    (True, "UNKNOWN", "OK", "resolve"), (True, "UNKNOWN", "WARNING", "resolve"),
]


@pytest.mark.parametrize("unknown, before, status, event", TRANSITIONS,
                         ids=[f"{'u-' if u else ''}{b}-{s}" for u, b, s, _ in TRANSITIONS])
def test_what_a_change_of_status_sends_to_pagerduty(unknown, before, status, event):
    """One incident per problem: a trigger entering the set, nothing while in it (CRITICAL and UNKNOWN alike once
    open), one resolve when judged OK or WARNING; an UNKNOWN that does not page neither opens nor resolves."""
    channel = notify.Notify(pagerduty=True, pagerduty_unknown=unknown)
    assert notify.page_due(channel, before, status) == event
    assert ("pagerduty" in notify.due(channel, {"pagerduty": before}, status)) == (event is not None)


def test_a_dedup_key_is_the_entrys_and_fits_pagerduty():
    assert notify.dedup_key("production", "health-5min") == "aias-runbooks/production/health-5min"
    long = notify.dedup_key("production", "route/api/" + "g" * 300)
    assert len(long) == 255 and long != notify.dedup_key("production", "route/api/" + "g" * 299)
