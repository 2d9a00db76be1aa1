"""Notifications of a scheduled entry's change of status: to a Slack-compatible incoming webhook, by email through
Resend, and pages through PagerDuty's Events API v2.

A schedule entry's `notify:` (schedule.py; a route's, routes.yaml) says where to: `slack: true` posts a Block Kit
message (its `text` the fallback) to the profile's `slack_webhook_url` secret (the URL embeds the webhook's token, so
it never sits in schedules.yaml); `email:` sends through the profile's Resend (`resend_api` url, `resend_api_key`
secret) from the address `from:`; `pagerduty: true` (or `{unknown: true}`) pages through the profile's
`pagerduty_events` url (default PagerDuty's own) with its `pagerduty_routing_key` secret.

The pagerduty channel pages a problem, not a change: an entry's status entering the trigger set (CRITICAL, and
UNKNOWN when asked) triggers one incident, its dedup_key derived from (environment, entry) so one problem is one
incident; staying in the set sends nothing more; a judged status outside it (OK, WARNING) after a delivered trigger
resolves it, once. An UNKNOWN that does not page does not resolve either: a check that could not run says nothing
of the problem. The trigger carries the report's location in `links` (report_url(), or the report's file URI).

Only a change of status is told, never every run: each channel's last delivered status is kept in the entry's
state (`notified`, none yet counting as OK), so the first run tells only a problem, a recovery to OK is told, and
a delivery that failed (refused, an error status, no complete answer within TIMEOUT_S, a total deadline: a
receiver answering a byte at a time does not hold `schedule run-due`) is retried at the next run.

A message is the verdict line, the top findings (code, severity, title) and the report path (or its URL when the
profile sets `report_base_url`), nothing else, passed through the secret redaction with every secret of the profile,
the webhook's token and the routing key included; a page's summary, details and links likewise.

post_incident_note() posts a text (a report's location) as a note on a PagerDuty incident (REST API v2, the profile's
`pagerduty_api` url, `pagerduty_api_token` secret, `pagerduty_from` user), for `serve`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import UsageError
from .printable import printable, show
from .runner.redact import MIN_LENGTH, redact_text
from .runner.run_all import ranked
from .settings import Environment
from .sources import http

KEYS = ("when", "slack", "email", "from", "pagerduty")
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
PAGED = ("CRITICAL", "UNKNOWN")   # statuses a trigger may have been sent for: the incident is open
PAGERDUTY_EVENTS = "https://events.pagerduty.com"   # Events API v2 base when the profile names none
PAGERDUTY_API = "https://api.pagerduty.com"         # REST API v2 base when the profile names none
PAGERDUTY_ACCEPT = "application/vnd.pagerduty+json;version=2"
MAX_SUMMARY = 1024    # PagerDuty's payload.summary limit
MAX_DEDUP = 255       # PagerDuty's dedup_key limit
MAX_NOTE = 10_000
SEVERITY = {"CRITICAL": "critical", "UNKNOWN": "error"}   # a page's payload.severity by status
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,64}")


@dataclass(frozen=True)
class Notify:
    """Where an entry's changes of status go."""

    slack: bool = False
    email: tuple[str, ...] = ()
    sender: str | None = None
    when: str = "change"
    pagerduty: bool = False
    pagerduty_unknown: bool = False   # page on UNKNOWN too

    @property
    def channels(self) -> tuple[str, ...]:
        return ((("slack",) if self.slack else ()) + (("email",) if self.email else ())
                + (("pagerduty",) if self.pagerduty else ()))

    @property
    def trigger_on(self) -> tuple[str, ...]:
        """The statuses that page (the pagerduty channel's trigger set)."""
        return ("CRITICAL", "UNKNOWN") if self.pagerduty_unknown else ("CRITICAL",)


@dataclass(frozen=True)
class Message:
    subject: str   # the verdict line
    text: str      # the verdict line, the top findings, the report path (or URL)
    blocks: tuple[dict[str, Any], ...] = ()   # the same as Slack Block Kit blocks


def parse(raw: Any, profile: Environment, where: str) -> Notify:
    """An entry's `notify:` mapping, checked against its profile; UsageError (one line naming `where` and what is
    valid) for an unknown key, a bad address, or a channel whose secret or URL the profile lacks."""
    valid = ("valid: when (change), slack (true/false), email (a list of addresses), from (the sender's address), "
             "pagerduty (true/false or {unknown: true})")
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
    pagerduty, page_unknown = _pagerduty(raw.get("pagerduty", False), where)
    if not slack and not email and not pagerduty:
        raise UsageError(f"{where}: `notify` tells nobody: set `slack: true`, `email: [...]`, `pagerduty: true` "
                         "or several")
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
    if pagerduty:
        _needs(profile, "pagerduty_routing_key", where)
        if not _webhook_ok(_events_base(profile)):
            raise UsageError(f"{where}: `notify.pagerduty` needs the `pagerduty_events` url of environment "
                             f"'{profile.name}' to be an http(s) URL (default {PAGERDUTY_EVENTS})")
    return Notify(slack, tuple(email), sender if email else None, when, pagerduty, page_unknown)


def _pagerduty(raw: Any, where: str) -> tuple[bool, bool]:
    """`pagerduty: true|false` or `pagerduty: {unknown: true|false}`: (page, page on UNKNOWN too)."""
    if isinstance(raw, bool):
        return raw, False
    if isinstance(raw, dict) and set(raw) <= {"unknown"} and isinstance(raw.get("unknown", False), bool):
        return True, bool(raw.get("unknown", False))
    raise UsageError(f"{where}: `notify.pagerduty` must be true, false or {{unknown: true}} (page on CRITICAL; with "
                     "unknown: true on UNKNOWN too)")


def _events_base(profile: Environment) -> str:
    return (profile.urls.get("pagerduty_events") or PAGERDUTY_EVENTS).rstrip("/")


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
    one (none delivered yet counts as OK); for pagerduty, a trigger or a resolve is due (page_due()). A run that did
    not happen (NOT RUN) tells nothing."""
    if status not in STATUSES:
        return {}
    told = {c: notified.get(c, "OK") for c in notify.channels}
    return {c: before for c, before in told.items()
            if (page_due(notify, before, status) is not None if c == "pagerduty" else before != status)}


def page_due(notify: Notify, before: str, status: str) -> str | None:
    """The pagerduty event due now, "trigger" or "resolve", or None: trigger when the status enters the trigger set
    and no trigger is open (`before`, the status last delivered, is not a paged one); resolve when an open one's
    entry is judged outside the set (OK, WARNING; an UNKNOWN that does not page leaves it open)."""
    is_open = before in PAGED
    if status in notify.trigger_on:
        return None if is_open else "trigger"
    return "resolve" if is_open and status in ("OK", "WARNING") else None


def dedup_key(env: str, entry: str) -> str:
    """The incident key of an entry (a schedule entry, or serve's "route/<route>/<group key>") on an environment:
    one problem, one incident. At most PagerDuty's 255 characters (a longer one ends with its SHA-256)."""
    key = f"aias-runbooks/{env}/{entry}"
    if len(key) <= MAX_DEDUP:
        return key
    return key[:MAX_DEDUP - 65] + "#" + hashlib.sha256(key.encode()).hexdigest()


def report_url(profile: Environment, report: Path | None) -> str | None:
    """The report's URL: the profile's report_base_url joined with the report's path under the output root
    (<day>/<run folder>/report.html, as the runner files it); None when the profile sets none or there is no
    report."""
    if not profile.report_base_url or report is None:
        return None
    relative = "/".join(quote(part) for part in Path(report).parts[-3:])
    return f"{profile.report_base_url}/{relative}"


def message(entry: str, runbook: str, env: str, before: str, status: str, report: Path | None,
            secrets: list[str], link: str | None = None) -> Message:
    """The verdict line, the top findings from the run's verdict.json and the report path (`link`, its URL, when
    the profile serves reports), redacted of `secrets`; control and format characters in them (a title quoting a
    commit message, a domain) written as escapes. The same as Block Kit blocks for Slack."""
    findings = _top_findings(report, secrets)
    line = _verdict_line(entry, runbook, env, before, status, findings)
    rows = [f"- {f['severity']} {f['code']}: {f['title']}" for f in findings] or ["- no finding above OK"]
    where = link or (str(report) if report else "none (the run filed no report)")
    lines = [line, "", "Top findings:", *rows, "", f"Report: {where}"]

    def clean(text: str, keep: str = "") -> str:   # platform text shown, never acted on (printable.py)
        return printable(redact_text(text, secrets)[0], keep=keep)

    return Message(clean(line), clean("\n".join(lines), keep="\n"),
                   _blocks(clean(line), runbook, env, f"{before} -> {status}", [clean(r) for r in rows],
                           clean(where), clean(link) if link else None))


def _verdict_line(entry: str, runbook: str, env: str, before: str, status: str, findings: list[dict[str, str]]) -> str:
    if status == "OK":
        return f"{entry}: {runbook} on {env} recovered, {before} -> OK"
    return f"{entry}: {runbook} on {env} went {before} -> {status}" + (f": {findings[0]['code']}" if findings else "")


def _blocks(line: str, runbook: str, env: str, change: str, rows: list[str], where: str,
            link: str | None) -> tuple[dict[str, Any], ...]:
    """Block Kit: the verdict line as the header; status, runbook and environment as fields; the top findings; the
    report's location; a button to the report when it has a URL. Text already redacted and printable; Slack's
    control characters escaped here, and each text cut to Block Kit's limits."""
    def mrkdwn(text: str, limit: int = 2000) -> dict[str, str]:
        return {"type": "mrkdwn", "text": _slack(text)[:limit]}

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(line, 150)}},
        {"type": "section", "fields": [mrkdwn(f"*Status*\n{change}"), mrkdwn(f"*Runbook*\n{runbook}"),
                                       mrkdwn(f"*Environment*\n{env}")]},
        {"type": "section", "text": mrkdwn("*Top findings*\n" + "\n".join(rows), 3000)},
        {"type": "context", "elements": [mrkdwn(f"Report: {where}")]}]
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the report"}, "url": link[:3000]}]})
    return tuple(blocks)


def _slack(text: str) -> str:
    return "".join(SLACK_ESCAPES.get(c, c) for c in text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
    """Every secret of the profile (the routing key and API token among them), and the webhook URL's path (its
    token) as a secret by itself."""
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
        payload: dict[str, Any] = {"text": _slack(msg.text)} | ({"blocks": list(msg.blocks)} if msg.blocks else {})
        where = "the Slack webhook"
    else:
        url = profile.urls["resend_api"].rstrip("/") + "/emails"
        headers["Authorization"] = f"Bearer {profile.secret('resend_api_key').reveal()}"  # type: ignore[union-attr]
        payload = {"from": notify.sender, "to": list(notify.email), "subject": msg.subject, "text": msg.text}
        where = "Resend"
    return _post(url, headers, payload, where)


def _post(url: str, headers: dict[str, str], payload: dict[str, Any], where: str) -> str | None:
    """POST JSON within TIMEOUT_S (a total deadline): None once answered 2xx, else why not in one line (the URL
    and credentials never quoted: a webhook's URL is its token). PagerDuty's error answers add their first error."""
    try:
        response = http.request("POST", url, TIMEOUT_S, headers, json=payload)
    except http.TooSlow as exc:
        return f"{where} did not answer within {exc.seconds:g} s"
    except http.NoAnswer as exc:
        return f"{where} did not answer ({exc.kind})"
    except http.NotSent as exc:
        return f"not sent to {where}: the URL or credential is not valid ({exc.kind})"
    if response.status_code >= 300:
        return f"{where} answered HTTP {response.status_code}" + _pagerduty_error(where, response)
    return None


def _pagerduty_error(where: str, response: Any) -> str:
    """PagerDuty's reason for an error answer (Events: status and errors; REST: error.message and errors), one
    short line, or ''."""
    if not where.startswith("PagerDuty"):
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    reasons = [str(error.get("status") or error.get("message") or "")]
    reasons += [str(e) for e in (error.get("errors") or []) if isinstance(error.get("errors"), list)][:2]
    text = ": ".join(r for r in reasons if r)
    return f" ({_cut(' '.join(printable(text).split()), 200)})" if text else ""


def page(action: str, entry: str, runbook: str, env: str, status: str, report: Path | None, profile: Environment,
         secrets: list[str], link: str | None = None) -> str | None:
    """Send one Events API v2 event ("trigger" or "resolve") for the entry's incident: None once accepted (202),
    else why not in one line. A trigger's summary (the verdict line), details and links are redacted of
    `secrets`; its link is the report's URL (report_url()) or else its file URI."""
    event: dict[str, Any] = {"routing_key": profile.secret("pagerduty_routing_key").reveal(),  # type: ignore[union-attr]
                             "event_action": action, "dedup_key": dedup_key(env, entry)}
    if action == "trigger":
        event |= _trigger(entry, runbook, env, status, report, profile, secrets, link)
    return _post(_events_base(profile) + "/v2/enqueue", {}, event, "PagerDuty")


def _trigger(entry: str, runbook: str, env: str, status: str, report: Path | None, profile: Environment,
             secrets: list[str], link: str | None = None) -> dict[str, Any]:
    """A trigger's payload, links and client (Events API v2; PD-CEF fields)."""
    findings = _top_findings(report, secrets)
    link = report_url(profile, report) or link or (Path(report).absolute().as_uri() if report else None)

    def clean(text: str, limit: int) -> str:
        return _cut(printable(redact_text(text, secrets)[0]), limit)

    top = f": {findings[0]['code']} {findings[0]['title']}" if findings else ""
    summary = clean(f"{entry}: {runbook} on {env} is {status}{top}", MAX_SUMMARY)
    details = {"entry": clean(entry, 300), "runbook": runbook, "environment": env, "status": status,
               "top_findings": [f"{f['severity']} {f['code']}: {f['title']}" for f in findings],
               "report": clean(link or "none (the run filed no report)", 3000)}
    payload = {"summary": summary, "source": clean(env, 255), "severity": SEVERITY.get(status, "error"),
               "component": runbook, "group": clean(env, 255), "class": findings[0]["code"] if findings else status,
               "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
               "custom_details": details}
    event: dict[str, Any] = {"payload": payload, "client": "aias-runbooks"}
    if link:
        event["links"] = [{"href": clean(link, 3000), "text": clean(f"Report: {runbook} on {env}", 300)}]
    return event


def post_incident_note(profile: Environment, incident_id: str, text: str) -> str | None:
    """Post `text` (redacted with the profile's secrets) as a note on PagerDuty incident `incident_id` (REST API v2
    POST {pagerduty_api}/incidents/{id}/notes, Token auth, From the profile's pagerduty_from): None once accepted,
    else why not in one line."""
    token = profile.secret("pagerduty_api_token")
    if token is None:
        return f"no incident note: {profile.missing_secret_message('pagerduty_api_token')}"
    if not profile.pagerduty_from:
        return (f"no incident note: environment '{profile.name}' sets no pagerduty_from (the email of a PagerDuty "
                f"user, in params/environments/{profile.name}.yaml)")
    if not isinstance(incident_id, str) or not INCIDENT_ID.fullmatch(incident_id):
        return f"no incident note: {show(incident_id)} is not a PagerDuty incident id (letters and digits)"
    secrets = secrets_of(profile)
    content = _cut(printable(redact_text(text, secrets)[0], keep="\n"), MAX_NOTE)
    headers = {"Authorization": f"Token token={token.reveal()}", "From": profile.pagerduty_from,
               "Accept": PAGERDUTY_ACCEPT}
    base = (profile.urls.get("pagerduty_api") or PAGERDUTY_API).rstrip("/")
    problem = _post(f"{base}/incidents/{incident_id}/notes", headers, {"note": {"content": content}},
                    "PagerDuty's REST API")
    return redact_text(problem, secrets)[0] if problem else None


def tell(entry: str, runbook: str, env: str, notify: Notify, notified: Mapping[str, str], status: str,
         report: Path | None, profile: Environment, link: str | None = None) -> tuple[dict[str, str], list[str]]:
    """Tell each channel due (see due()) of this status: ({channel: status} for those delivered, one line per
    channel that was not, to be retried at the next run). The pagerduty channel's status delivered is the one its
    trigger or resolve was sent for: a paged one (PAGED) while its incident is open. `link`: where the report is
    when not at `report` (an s3:// URL; `report` is then a local copy of its folder's verdict.json), shown unless
    the profile's report_base_url gives its URL."""
    secrets = secrets_of(profile)
    link = report_url(profile, report) or link
    delivered, problems = {}, []
    for channel, before in due(notify, notified, status).items():
        if channel == "pagerduty":
            action = page_due(notify, before, status)
            problem = page(action, entry, runbook, env, status, report, profile, secrets,  # type: ignore[arg-type]
                           link)
        else:
            problem = deliver(channel, notify, profile,
                              message(entry, runbook, env, before, status, report, secrets, link))
        if problem is None:
            delivered[channel] = status
        else:
            problems.append(f"{channel} notification ({before} -> {status}) not delivered: "
                            f"{redact_text(problem, secrets)[0]}; retried at the next run")
    return delivered, problems
