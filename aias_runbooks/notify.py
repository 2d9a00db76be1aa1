"""Notifications of a scheduled entry's change of status: to a Slack-compatible incoming webhook, by email through
Resend.

A schedule entry's `notify:` (schedule.py) says where to: `slack: true` posts {"text": ...} to the profile's
`slack_webhook_url` secret (the URL embeds the webhook's token, so it never sits in schedules.yaml); `email:`
sends through the profile's Resend (`resend_api` url, `resend_api_key` secret) from the address `from:`.

Only a change of status is told, never every run: each channel's last delivered status is kept in the entry's
state (`notified`, none yet counting as OK), so the first run tells only a problem, a recovery to OK is told, and
a delivery that failed (refused, an error status, no complete answer within TIMEOUT_S, a total deadline: a
receiver answering a byte at a time does not hold `schedule run-due`) is retried at the next run.

A message is the verdict line, the top findings (code, severity, title) and the report path, nothing else, passed
through the secret redaction with every secret of the profile, the webhook's token included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import UsageError
from .printable import printable, show
from .runner.redact import MIN_LENGTH, redact_text
from .runner.run_all import ranked
from .settings import Environment
from .sources import http

KEYS = ("when", "slack", "email", "from")
WHEN = ("change",)
STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
TOP = 3
TIMEOUT_S = 5.0
MAX_TO = 50            # Resend takes at most 50 recipients per email
MAX_TITLE = 200
ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)"
                     r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
NAMED = re.compile(r"([^<>\"\r\n]{0,100}?)\s*<([^<>]+)>")   # "AIAS Runbooks <runbooks@example.com>"
SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}    # Slack's control characters in message text


@dataclass(frozen=True)
class Notify:
    """Where an entry's changes of status go."""

    slack: bool = False
    email: tuple[str, ...] = ()
    sender: str | None = None
    when: str = "change"

    @property
    def channels(self) -> tuple[str, ...]:
        return (("slack",) if self.slack else ()) + (("email",) if self.email else ())


@dataclass(frozen=True)
class Message:
    subject: str   # the verdict line
    text: str      # the verdict line, the top findings, the report path


def parse(raw: Any, profile: Environment, where: str) -> Notify:
    """An entry's `notify:` mapping, checked against its profile; UsageError (one line naming `where` and what is
    valid) for an unknown key, a bad address, or a channel whose secret or URL the profile lacks."""
    valid = "valid: when (change), slack (true/false), email (a list of addresses), from (the sender's address)"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: `notify` must be a mapping; {valid}")
    if True in raw:   # YAML 1.1 reads a bare `on` (as `yes`) as true
        raise UsageError(f"{where}: `notify` has a key YAML reads as true (`on:`?): write `when: change`; {valid}")
    unknown = [str(k) for k in raw if k not in KEYS]
    if unknown:
        raise UsageError(f"{where}: `notify` has unknown key {show(unknown[0])}; {valid}")
    when = raw.get("when", "change")
    if when not in WHEN:
        raise UsageError(f"{where}: `notify.when` {show(when)} is not one of: {', '.join(WHEN)} (a change of status)")
    slack = raw.get("slack", False)
    if not isinstance(slack, bool):
        raise UsageError(f"{where}: `notify.slack` must be true or false")
    email = raw.get("email") or []
    if not isinstance(email, list) or len(email) > MAX_TO:
        raise UsageError(f"{where}: `notify.email` must be a list of at most {MAX_TO} addresses")
    for address in email:
        if not isinstance(address, str) or not ADDRESS.fullmatch(address):
            raise UsageError(f"{where}: `notify.email` {show(address)} is not an email address (e.g. "
                             "oncall@example.com)")
    if not slack and not email:
        raise UsageError(f"{where}: `notify` tells nobody: set `slack: true`, `email: [...]` or both")
    sender = raw.get("from")
    if email and (not isinstance(sender, str) or not _sender_address(sender)):
        raise UsageError(f"{where}: `notify.from` {show(sender) if sender else 'is missing: it'} must be the "
                         "sender's address on a domain verified in Resend (e.g. 'AIAS Runbooks "
                         "<runbooks@example.com>')")
    if not email and sender is not None:
        raise UsageError(f"{where}: `notify.from` is only for `email`")
    if slack:
        _needs(profile, "slack_webhook_url", where)
        if not _webhook_ok(profile.secret("slack_webhook_url").reveal()):  # type: ignore[union-attr]
            raise UsageError(f"{where}: the {profile.secret_vars['slack_webhook_url']} of environment "
                             f"'{profile.name}' is not an http(s) URL (the incoming webhook's URL)")
    if email:
        _needs(profile, "resend_api_key", where)
        if not profile.urls.get("resend_api"):
            raise UsageError(f"{where}: `notify.email` needs a `resend_api` url in environment '{profile.name}' "
                             f"(params/environments/{profile.name}.yaml, urls:)")
    return Notify(slack, tuple(email), sender if email else None, when)


def _needs(profile: Environment, role: str, where: str) -> None:
    if profile.secret(role) is None:
        raise UsageError(f"{where}: `notify` needs {role}: {profile.missing_secret_message(role)}"
                         + ("" if role in profile.secret_vars else
                            f" (name its variable under secrets: in params/environments/{profile.name}.yaml)"))


def _sender_address(sender: str) -> str | None:
    named = NAMED.fullmatch(sender.strip())
    address = named.group(2) if named else sender.strip()
    return address if ADDRESS.fullmatch(address) else None


def _webhook_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def due(notify: Notify, notified: Mapping[str, str], status: str) -> dict[str, str]:
    """{channel: the status it was last told} for each channel to tell now: its last delivered status is not this
    one (none delivered yet counts as OK). A run that did not happen (NOT RUN) tells nothing."""
    if status not in STATUSES:
        return {}
    told = {c: notified.get(c, "OK") for c in notify.channels}
    return {c: before for c, before in told.items() if before != status}


def message(entry: str, runbook: str, env: str, before: str, status: str, report: Path | None,
            secrets: list[str]) -> Message:
    """The verdict line, the top findings from the run's verdict.json and the report path, redacted of `secrets`;
    control and format characters in them (a title quoting a commit message, a domain) written as escapes."""
    findings = _top_findings(report, secrets)
    if status == "OK":
        line = f"{entry}: {runbook} on {env} recovered, {before} -> OK"
    else:
        line = f"{entry}: {runbook} on {env} went {before} -> {status}" + (f": {findings[0]['code']}"
                                                                           if findings else "")
    rows = [f"- {f['severity']} {f['code']}: {f['title']}" for f in findings] or ["- no finding above OK"]
    lines = [line, "", "Top findings:", *rows, "", f"Report: {report if report else 'none (the run filed no report)'}"]
    return Message(printable(redact_text(line, secrets)[0]),   # platform text shown, never acted on (printable.py)
                   printable(redact_text("\n".join(lines), secrets)[0], keep="\n"))


def _top_findings(report: Path | None, secrets: list[str]) -> list[dict[str, str]]:
    """The TOP worst findings above OK in the report's verdict.json (code, severity, title), each redacted whole,
    then made one short line (a secret cut short would escape the redaction)."""
    try:
        verdict = json.loads((report.parent / "verdict.json").read_text()) if report else {}
    except (OSError, ValueError):
        return []
    found = [f for f in ranked(verdict.get("findings") or []) if f.get("severity") != "OK"][:TOP]
    return [{"code": _one_line(f.get("code"), 80, secrets), "severity": _one_line(f.get("severity"), 10, secrets),
             "title": _one_line(f.get("title"), MAX_TITLE, secrets)} for f in found]


def _one_line(value: Any, limit: int, secrets: list[str]) -> str:
    text = " ".join(redact_text(str(value or ""), secrets)[0].split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def secrets_of(profile: Environment) -> list[str]:
    """Every secret of the profile, and the webhook URL's path (its token) as a secret by itself."""
    values = [s.reveal() for s in profile.secrets().values()]
    if hook := profile.secret("slack_webhook_url"):
        path = urlsplit(hook.reveal()).path
        values += [p for p in (path, path.rsplit("/", 1)[-1]) if len(p) >= MIN_LENGTH]
    return values


def deliver(channel: str, notify: Notify, profile: Environment, msg: Message) -> str | None:
    """Send one message on one channel: None once accepted, else why not in one line (never the URL or key)."""
    headers: dict[str, str] = {}
    if channel == "slack":
        url = profile.secret("slack_webhook_url").reveal()  # type: ignore[union-attr]
        payload: dict[str, Any] = {"text": "".join(SLACK_ESCAPES.get(c, c) for c in msg.text)}
        where = "the Slack webhook"
    else:
        url = profile.urls["resend_api"].rstrip("/") + "/emails"
        headers["Authorization"] = f"Bearer {profile.secret('resend_api_key').reveal()}"  # type: ignore[union-attr]
        payload = {"from": notify.sender, "to": list(notify.email), "subject": msg.subject, "text": msg.text}
        where = "Resend"
    try:   # the URL and key are never quoted: the webhook's URL is its token
        response = http.request("POST", url, TIMEOUT_S, headers, json=payload)
    except http.TooSlow as exc:
        return f"{where} did not answer within {exc.seconds:g} s"
    except http.NoAnswer as exc:
        return f"{where} did not answer ({exc.kind})"
    except http.NotSent as exc:
        return f"not sent to {where}: the URL or credential is not valid ({exc.kind})"
    if response.status_code >= 300:
        return f"{where} answered HTTP {response.status_code}"
    return None


def tell(entry: str, runbook: str, env: str, notify: Notify, notified: Mapping[str, str], status: str,
         report: Path | None, profile: Environment) -> tuple[dict[str, str], list[str]]:
    """Tell each channel due (see due()) of this status: ({channel: status} for those delivered, one line per
    channel that was not, to be retried at the next run)."""
    secrets = secrets_of(profile)
    delivered, problems = {}, []
    for channel, before in due(notify, notified, status).items():
        problem = deliver(channel, notify, profile, message(entry, runbook, env, before, status, report, secrets))
        if problem is None:
            delivered[channel] = status
        else:
            problems.append(f"{channel} notification ({before} -> {status}) not delivered: "
                            f"{redact_text(problem, secrets)[0]}; retried at the next run")
    return delivered, problems
