"""Notifications of scheduled runs, through the real `schedule run-due` on the sandbox: a change of status is told
once, to a Slack webhook (a local receiver; Block Kit with the text as fallback) and by email (the sandbox's
Resend); the same status again is not; a recovery is; a receiver that fails or does not answer never fails run-due
and is tried again at the next run; no secret reaches a message; a bad `notify:` is one line before anything runs.
Paging (PagerDuty) is tests/runner/test_paging.py's."""

from __future__ import annotations

import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aias_runbooks import notify
from aias_runbooks.settings import load_environment

from ..helpers import FIXTURE_NOTEBOOKS, run_due, runs, write_schedule

SENDER = "AIAS Runbooks <runbooks@aiautomatedsystems.ca>"   # the sandbox's verified sending domain


class Receiver:
    """A Slack-compatible incoming webhook on 127.0.0.1: records each POST; answers 200 "ok", 500, or not at all
    (`mode`)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.posts: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append({"path": self.path, "body": json.loads(body), "raw": body.decode()})
                if receiver.mode == "hang":
                    receiver.release.wait(60)
                    return
                status = 500 if receiver.mode == "500" else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"internal_error")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0TEST/B0TEST/{secrets.token_hex(12)}"

    def texts(self) -> list[str]:
        """Each message as Slack shows it: its three escapes (&amp; &lt; &gt;) read back."""
        return [p["body"]["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for p in self.posts]


@pytest.fixture
def receiver():
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.release.set()
    hook.server.shutdown()
    hook.server.server_close()


def emails_to(sandbox: Path, address: str) -> list[dict]:
    """What the sandbox's Resend recorded as sent to this address (from, to, subject, text)."""
    state = json.loads((sandbox / "services.json").read_text())
    return [e for e in state.get("emails", []) if address in e["to"]]


def secrets_in_use(hook_url: str) -> list[str]:
    profile = load_environment("sandbox")
    return [urlsplit(profile.secret("database_url").reveal()).password, profile.secret("admin_token").reveal(),
            profile.secret("resend_api_key").reveal(), hook_url, urlsplit(hook_url).path.rsplit("/", 1)[-1]]


def report_of(proc) -> str:
    return proc.stdout.split("report: ", 1)[1].split()[0]


def test_a_change_of_status_is_told_once_and_the_recovery_too(sandbox, scenario, receiver, tmp_path):
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    schedules = write_schedule(tmp_path, f"{{when: change, slack: true, email: ['{oncall}'], from: '{SENDER}'}}")
    output, env = tmp_path / "output", os.environ | {"AIAS_SANDBOX_SLACK_WEBHOOK_URL": receiver.url}

    first = run_due(schedules, output, "2026-11-26T20:00:10Z", env=env)
    assert (first.returncode, first.stderr) == (0, ""), first.stdout + first.stderr
    assert receiver.posts == [] and emails_to(sandbox, oncall) == [], "a first run that is OK tells nobody"

    scenario("api-down")
    down = run_due(schedules, output, "2026-11-26T20:05:10Z", env=env)
    assert down.returncode == 2 and down.stderr == "", down.stdout + down.stderr
    assert len(receiver.posts) == 1 and urlsplit(receiver.url).path == receiver.posts[0]["path"]
    text = receiver.texts()[0]
    lines = text.splitlines()
    assert lines[0] == "health-5min: health-check on sandbox went OK -> CRITICAL: API_DOWN", text
    assert any(line.startswith("- CRITICAL API_DOWN: ") for line in lines), text
    assert sum(line.startswith("- ") for line in lines) <= 3, "the top 3 findings at most"
    assert lines[-1] == f"Report: {report_of(down)}"
    [email] = emails_to(sandbox, oncall)
    assert (email["from"], email["to"], email["subject"]) == (SENDER, [oncall], lines[0])
    assert email["text"] == text, "the same message by email (Slack's text escapes only &, < and >)"

    again = run_due(schedules, output, "2026-11-26T20:10:10Z", env=env)
    assert again.returncode == 2 and again.stderr == ""
    assert len(receiver.posts) == 1 and len(emails_to(sandbox, oncall)) == 1, "CRITICAL again: nothing new"

    scenario("healthy")
    back = run_due(schedules, output, "2026-11-26T20:15:10Z", env=env)
    assert back.returncode == 0 and back.stderr == "", back.stdout + back.stderr
    assert len(receiver.posts) == 2 and len(emails_to(sandbox, oncall)) == 2
    recovered = receiver.texts()[1].splitlines()
    assert recovered[0] == "health-5min: health-check on sandbox recovered, CRITICAL -> OK"
    assert "- no finding above OK" in recovered and recovered[-1] == f"Report: {report_of(back)}"
    state = json.loads((output / ".schedule" / "health-5min.json").read_text())
    assert state["notified"] == {"slack": "OK", "email": "OK"} and state["status"] == "OK"

    delivered = receiver.texts() + [e["subject"] + e["text"] for e in emails_to(sandbox, oncall)]
    for secret in secrets_in_use(receiver.url):
        assert not any(secret in message for message in delivered)
    assert len(runs(output)) == 4


def test_a_failed_delivery_never_fails_run_due_and_is_retried_at_the_next_run(sandbox, scenario, receiver,
                                                                             tmp_path):
    """The webhook answers 500, then does not answer at all, then accepts; email is refused by Resend (the sender's
    domain is not verified) throughout. run-due's exit code stays the run's (CRITICAL), one stderr line per
    channel not told, and each run tries again until told."""
    schedules = write_schedule(tmp_path, "{slack: true, email: [oncall@example.com], "
                                         "from: runbooks@unverified.example}")
    output, env = tmp_path / "output", os.environ | {"AIAS_SANDBOX_SLACK_WEBHOOK_URL": receiver.url}
    scenario("api-down")

    receiver.mode = "500"
    refused = run_due(schedules, output, "2026-11-26T20:00:10Z", env=env)
    assert refused.returncode == 2 and "health-5min (2026-11-26 20:00Z): CRITICAL" in refused.stdout, \
        refused.stdout + refused.stderr
    assert refused.stderr.splitlines() == [
        "  health-5min: slack notification (OK -> CRITICAL) not delivered: the Slack webhook answered HTTP 500; "
        "retried at the next run",
        "  health-5min: email notification (OK -> CRITICAL) not delivered: Resend answered HTTP 403; retried at "
        "the next run"]
    assert "notified" not in json.loads((output / ".schedule" / "health-5min.json").read_text())

    receiver.mode = "hang"
    silent = run_due(schedules, output, "2026-11-26T20:05:10Z", env=env)
    assert silent.returncode == 2, silent.stdout + silent.stderr
    assert "slack notification (OK -> CRITICAL) not delivered: the Slack webhook did not answer within 5 s" \
        in silent.stderr
    assert len(receiver.posts) == 2, "tried again at the next run"

    receiver.mode = "ok"
    told = run_due(schedules, output, "2026-11-26T20:10:10Z", env=env)
    assert told.returncode == 2
    assert len(told.stderr.splitlines()) == 1 and "email notification" in told.stderr, "only email still fails"
    assert len(receiver.posts) == 3
    assert receiver.texts()[2].startswith("health-5min: health-check on sandbox went OK -> CRITICAL: API_DOWN")
    assert json.loads((output / ".schedule" / "health-5min.json").read_text())["notified"] == {"slack": "CRITICAL"}

    quiet = run_due(schedules, output, "2026-11-26T20:15:10Z", env=env)
    assert len(receiver.posts) == 3, "told once: not again while the status stays CRITICAL"
    assert quiet.returncode == 2 and "slack" not in quiet.stderr
    for secret in secrets_in_use(receiver.url):
        assert secret not in refused.stderr + silent.stderr + told.stderr + quiet.stderr


def test_a_secret_in_a_finding_title_never_reaches_the_receivers(sandbox, receiver, tmp_path):
    """A careless check quotes the database password, the admin token and the webhook URL in its title: the
    runner redacts the report, and the message (Slack and email) carries none of them."""
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    schedules = write_schedule(tmp_path, f"{{slack: true, email: ['{oncall}'], from: '{SENDER}'}}",
                               runbook="secret-title-check", parameters="{}")
    env = os.environ | {"AIAS_SANDBOX_SLACK_WEBHOOK_URL": receiver.url, "AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    result = run_due(schedules, tmp_path / "output", "2026-11-26T20:00:10Z", env=env)
    assert result.returncode == 1 and "notification" not in result.stderr, result.stdout + result.stderr
    assert "secret(s) were found in the report and redacted" in result.stderr, "the runner's scan, the first net"
    [text] = receiver.texts()
    [email] = emails_to(sandbox, oncall)
    assert "- WARNING SECRET_IN_TITLE: password [REDACTED] token [REDACTED] hook [REDACTED]" in text
    for secret in secrets_in_use(receiver.url):
        assert secret not in receiver.posts[0]["raw"] and secret not in json.dumps(email)


def test_the_message_is_redacted_even_when_the_report_is_not(sandbox, receiver, tmp_path, monkeypatch):
    """The second safety net: a verdict.json that still holds secrets (as if the runner's scan had missed them)
    is redacted with the profile's secrets before it is sent; Slack's control characters are escaped."""
    monkeypatch.setenv("AIAS_SANDBOX_SLACK_WEBHOOK_URL", receiver.url)
    profile = load_environment("sandbox")
    planted = secrets_in_use(receiver.url)
    report = tmp_path / "report" / "report.html"
    report.parent.mkdir()
    cut = "x" * 190 + " " + planted[1]   # a title cut short at 200 characters must not keep a secret's head
    findings = [{"code": "LEAK", "severity": "CRITICAL", "title": "leaked " + " and ".join(planted)},
                {"code": "PING", "severity": "WARNING", "title": "<!channel> &\n<https://evil.example|click>"},
                {"code": "FINE", "severity": "OK", "title": "not shown"},
                {"code": "CUT", "severity": "CRITICAL", "title": cut},
                {"code": "W3", "severity": "UNKNOWN", "title": "fourth, not shown"}]
    (report.parent / "verdict.json").write_text(json.dumps({"status": "CRITICAL", "findings": findings}))
    told, problems = notify.tell("e1", "health-check", "sandbox", notify.Notify(slack=True), {}, "CRITICAL",
                                 report, profile)
    assert (told, problems) == ({"slack": "CRITICAL"}, [])
    text = receiver.posts[0]["body"]["text"]   # as sent: Slack's control characters escaped
    assert text.splitlines() == [
        "e1: health-check on sandbox went OK -&gt; CRITICAL: LEAK", "", "Top findings:",
        "- CRITICAL LEAK: leaked [REDACTED] and [REDACTED] and [REDACTED] and [REDACTED] and [REDACTED]",
        "- CRITICAL CUT: " + "x" * 190 + " [REDAC...",
        "- WARNING PING: &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;", "", f"Report: {report}"]
    for secret in planted:
        assert secret[:6] not in receiver.posts[0]["raw"], "neither in the text nor in the Block Kit blocks"
    header, fields, findings, context = receiver.posts[0]["body"]["blocks"]
    assert header["text"]["text"] == "e1: health-check on sandbox went OK -> CRITICAL: LEAK", "plain text, shown as is"
    assert [f["text"] for f in fields["fields"]] == ["*Status*\nOK -&gt; CRITICAL", "*Runbook*\nhealth-check",
                                                     "*Environment*\nsandbox"]
    assert "- WARNING PING: &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in findings["text"]["text"]
    assert context["elements"][0]["text"] == f"Report: {report}", "no report_base_url: its path, and no button"


def test_the_sandbox_has_a_slack_webhook_of_its_own(sandbox, monkeypatch):
    """Without a receiver of the test's: the sandbox profile's webhook is the sandbox's, which keeps what it is
    sent; a wrong token is refused (403), as Slack refuses it, and that is a failed delivery, not an error."""
    profile = load_environment("sandbox")
    told, problems = notify.tell("e2", "health-check", "sandbox", notify.Notify(slack=True), {"slack": "OK"},
                                 "WARNING", None, profile)
    assert (told, problems) == ({"slack": "WARNING"}, [])
    kept = json.loads((sandbox / "services.json").read_text())["slack_messages"]
    assert kept[-1]["text"].startswith("e2: health-check on sandbox went OK -&gt; WARNING\n")
    assert kept[-1]["text"].endswith("Report: none (the run filed no report)")
    monkeypatch.setenv("AIAS_SANDBOX_SLACK_WEBHOOK_URL", profile.secret("slack_webhook_url").reveal() + "x")
    told, problems = notify.tell("e2", "health-check", "sandbox", notify.Notify(slack=True), {}, "WARNING", None,
                                 load_environment("sandbox"))
    assert told == {} and problems == ["slack notification (OK -> WARNING) not delivered: the Slack webhook "
                                       "answered HTTP 403; retried at the next run"]


BAD = [
    ("{slack: true, channel: ops}", "`notify` has unknown key 'channel'; valid: when (change), slack"),
    ("{slack: true, on: change}", "`notify` has a key YAML reads as true (`on:`?): write `when: change`"),
    ("{email: [not-an-address], from: 'a@b.example'}", "`notify.email` 'not-an-address' is not an email address"),
    ("{email: [oncall@example.com]}", "`notify.from` is missing: it must be the sender's address"),
    ("{email: oncall@example.com, from: a@b.example}", "`notify.email` must be a list of at most 50 addresses"),
    ("{slack: 'yes'}", "`notify.slack` must be true or false"),
    ("{slack: true, when: every-run}", "`notify.when` 'every-run' is not one of: change"),
    ("{slack: false}", "`notify` tells nobody"),
    ("[slack]", "`notify` must be a mapping; valid: "),
]


@pytest.mark.parametrize("notify_yaml, message", BAD, ids=[m.split(" ")[0] + "-" + str(i) for i, (_, m)
                                                           in enumerate(BAD)])
def test_a_bad_notify_is_one_line_and_exit_3_before_anything_runs(sandbox, tmp_path, notify_yaml, message):
    _refused(tmp_path, notify_yaml, message, os.environ.copy())


def test_a_profile_without_the_webhook_secret_is_refused_before_anything_runs(sandbox, tmp_path):
    _refused(tmp_path, "{slack: true}", "entry 1 ('health-5min'): `notify` needs slack_webhook_url: "
             "slack_webhook_url is not configured for environment 'sandbox'",
             os.environ | {"AIAS_SANDBOX_SLACK_WEBHOOK_URL": ""})


def _refused(tmp_path: Path, notify_yaml: str, message: str, env: dict) -> None:
    schedules = write_schedule(tmp_path, notify_yaml)
    output = tmp_path / "output"
    result = run_due(schedules, output, "2026-11-26T20:00:00Z", env=env)
    assert result.returncode == 3 and result.stdout == "", result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert "entry 1 ('health-5min')" in result.stderr
    assert not (output / "catalog").exists() and not (output / ".schedule").exists()
