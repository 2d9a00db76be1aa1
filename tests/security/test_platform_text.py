"""Text from the platform reaches a terminal, Slack and email only printable.

A commit message (Vercel), a sending domain's name (Resend), an email error the app logged and a rate-limit key
are the platform's data, quoted in finding titles. Each carries an escape sequence a terminal acts on (clear the
screen, set the window's title, a hyperlink hiding its address, CSI as the one byte 0x9b) or a Unicode format
character (a bidi override, a zero-width space). `aias-runbooks run` and `schedule run-due` print them, and the
schedule's notifications send them, only as visible escapes (`\\x1b[2J`, `\\u202e`): no raw ESC, BEL, C1 or format
character anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import unicodedata
from pathlib import Path

import pytest

from aias_runbooks.sandbox.emulators.hosted import state as services

from ..helpers import admin_session, cli, run_due

CLEAR, TITLE = "\x1b[2J\x1b[H", "\x1b]0;pwned\x07"
LINK = "\x1b]8;;http://evil.test/\x1b\\docs\x1b]8;;\x1b\\"
BIDI, CSI, ZERO_WIDTH = "\u202eexe.txt\u202c", "\x9b31m", "a\u200bb"
COMMIT = f"Fix {BIDI} list {CSI}red\nSecond line of the message{CLEAR}"
DOMAIN = f"mail{CLEAR}.aiautomatedsystems.ca"
KEY = f"ip:203.0.113.99{TITLE}"
ERROR = f"The {LINK} domain is not verified {ZERO_WIDTH}"
SENDER = "AIAS Runbooks <runbooks@aiautomatedsystems.ca>"   # the sandbox's verified sending domain


def raw(text: str) -> list[str]:
    """The characters in `text` a terminal or chat client would act on (C0 and C1 controls but newline and tab) or
    that are invisible and reorder or hide text (format characters), as U+XXXX."""
    return sorted({f"U+{ord(c):04X}" for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")})


def escaped(text: str) -> str:
    """How printable() shows `text`: each such character as its Python escape."""
    return "".join(repr(c)[1:-1] if raw(c) else c for c in text)


@pytest.fixture
def hostile_platform(sandbox, scenario):
    """A deployment gone bad whose commit message, a failed sending domain, a blocked rate-limit key and a logged
    email error all carry escape sequences and format characters; undone afterwards."""
    scenario("error-spike-after-deploy")
    with services.services_state(sandbox) as state:
        live = next(d for d in state["deployments"] if d["uid"] == state["production"])
        live["meta"]["githubCommitMessage"] = COMMIT
        domains = list(state["domains"])
        state["domains"] = domains + [{"id": "d0", "name": DOMAIN, "status": "failed", "region": "us-east-1",
                                       "created_at": "2026-01-01T00:00:00.000Z"}]
    with admin_session() as conn:
        conn.execute("INSERT INTO public.rate_limits (key, window_start, count, \"limit\", blocked_until) "
                     "VALUES (%s, now(), 20, 5, now() + interval '15 minutes')", [KEY])
        conn.execute("INSERT INTO public.error_logs (level, source, message) VALUES ('error', 'email', %s)", [ERROR])
    try:
        yield
    finally:
        with admin_session() as conn:
            conn.execute("DELETE FROM public.rate_limits WHERE key = %s", [KEY])
            conn.execute("DELETE FROM public.error_logs WHERE message = %s", [ERROR])
        with services.services_state(sandbox) as state:
            state["domains"] = domains


def test_run_prints_platform_text_only_escaped(hostile_platform, tmp_path):
    deploy = cli("run", "high-error-rate", "--output", str(tmp_path / "output"))
    signup = cli("run", "signup-failures", "--output", str(tmp_path / "output"))
    assert deploy.returncode == 2 and signup.returncode == 2, deploy.stdout + deploy.stderr + signup.stdout
    for proc in (deploy, signup):
        assert raw(proc.stdout + proc.stderr) == [], proc.stdout
        assert len(proc.stdout.splitlines()) == 2, f"the summary line and the report path:\n{proc.stdout}"
    assert deploy.stdout.startswith("CRITICAL: ERROR_SPIKE_AFTER_DEPLOY - ")
    assert escaped(" ".join(COMMIT.split())) in deploy.stdout, "the whole commit message, on the one line"
    assert "\\u202eexe.txt\\u202c" in deploy.stdout and "\\x9b31m" in deploy.stdout
    assert signup.stdout.startswith(f"CRITICAL: EMAIL_DOMAIN_UNVERIFIED - Sending domain {escaped(DOMAIN)} is "), \
        signup.stdout


def test_notifications_carry_platform_text_only_escaped(hostile_platform, sandbox, tmp_path):
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    schedules = tmp_path / "schedules.yaml"
    notify = f"{{slack: true, email: ['{oncall}'], from: '{SENDER}'}}"
    schedules.write_text("schedules:\n" + "".join(
        f"  - name: {name}\n    cron: '*/5 * * * *'\n    runbook: {name}\n    environment: sandbox\n"
        f"    notify: {notify}\n" for name in ("high-error-rate", "signup-failures")))
    before = len(_state(sandbox).get("slack_messages", []))

    proc = run_due(schedules, tmp_path / "output", "2026-11-26T20:00:10Z", env=os.environ.copy())
    assert proc.returncode == 2 and "notification" not in proc.stderr, proc.stdout + proc.stderr
    assert raw(proc.stdout + proc.stderr) == [], proc.stdout + proc.stderr
    state = _state(sandbox)
    slack = [m["text"] for m in state.get("slack_messages", [])[before:]]
    emails = [e for e in state.get("emails", []) if oncall in e["to"]]
    assert len(slack) == 2 and len(emails) == 2, (slack, emails)
    for text in slack + [e["subject"] for e in emails] + [e["text"] for e in emails]:
        assert raw(text) == [], text
    told = "\n".join(e["text"] for e in emails)
    for platform_text in (COMMIT, DOMAIN, KEY, ERROR):
        assert escaped(" ".join(platform_text.split())) in told, f"{escaped(platform_text)} not in\n{told}"
    assert "\\x1b]8;;http://evil.test/\\x1b\\docs" in "\n".join(slack), "Slack's text the same, shown"


def _state(sandbox: Path) -> dict:
    return json.loads((sandbox / "services.json").read_text())
