"""params/routes.yaml: who may send alerts to `serve`, and which runbook each alert starts.

    serve:   {environment: <the profile whose secrets authenticate senders>, max_running: 2, max_queued: 20,
              dedup_minutes: 30, max_body_kb: 1024}
    senders: [{name, type: alertmanager|grafana|pagerduty, auth: bearer|grafana-hmac|pagerduty-signature,
               secret: <a secret role of that profile>, signature_header, timestamp_header (grafana-hmac only)}]
    routes:  [{name, match: {label: value, or ~regex}, runbook, environment, parameters: {name: "template"},
               incident: "template" (optional), notify: (as schedules.yaml's), dedup_minutes: (optional)}]

The whole file is checked before anything is served, as schedules.yaml is (schedule.py): a mistake is one line
naming the file, the entry and what is valid (UsageError: exit 3). A sender's secret missing from the profile,
an unknown runbook, profile or parameter, a template that does not compile, a regex that does not: each is
refused at load, not when the first alert comes.

Routing.match(alert) is the first route whose every `match` label equals the alert's (or, written `~regex`,
fully matches it); None when no route does. job_for(route, alert) renders the route's parameters (Jinja2,
sandboxed, an undefined name is an error) from `labels`, `annotations` and `alert` (model.Alert.context():
source, status, starts_at, window_minutes, group_id, incident...), then checks the strings exactly as
`aias-runbooks run -p` does (parse_pairs, then prepare()): a label value that is no valid parameter (`../x`,
SQL, 300 characters where a short one is valid) refuses the alert, never starts a run. A route never sets
`apply`: an alert starts a diagnosis; a guarded action needs a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from .. import notify, paths
from ..errors import AiasError, UsageError
from ..input_files import read_yaml_file
from ..printable import printable, show
from ..runner.parameterize import ENV_PARAM, load_runbook, parse_pairs
from ..runner.request import INCIDENT, prepare
from ..runner.run_all import Job
from ..settings import Secret, environment_names, load_environment
from . import inbound
from .model import Alert, Refused

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
TOP = ("serve", "senders", "routes")
SERVE_KEYS = ("environment", "max_running", "max_queued", "dedup_minutes", "max_body_kb")
SENDER_KEYS = ("name", "type", "auth", "secret", "signature_header", "timestamp_header")
ROUTE_KEYS = ("name", "match", "runbook", "environment", "parameters", "incident", "notify", "dedup_minutes")
# (default, least, most) of each number under `serve:`; a route's dedup_minutes has the same bounds
LIMITS = {"max_running": (2, 1, 32), "max_queued": (20, 0, 1000), "dedup_minutes": (30, 1, 1440),
          "max_body_kb": (1024, 1, 10240)}
AUTH_OF = {"alertmanager": ("bearer",), "grafana": ("bearer", "grafana-hmac"),
           "pagerduty": ("pagerduty-signature", "bearer")}
NOT_FROM_ALERTS = ("apply", "operator", "confirm_target")   # guarded actions need a person, not an alert


def clamp(value: Any, least: float, most: float) -> Any:
    """The template filter `clamp(least, most)`: `{{ alert.window_minutes | clamp(10, 1440) }}` keeps a window
    within what the runbook's parameter allows."""
    return max(least, min(most, value))


TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
TEMPLATES.filters["clamp"] = clamp


@dataclass(frozen=True)
class Settings:
    """`serve:`: the profile whose secrets authenticate senders, and serve's bounds."""

    environment: str
    max_running: int = 2
    max_queued: int = 20
    dedup_minutes: int = 30
    max_body_kb: int = 1024


@dataclass(frozen=True)
class Sender:
    """A system allowed to post alerts: POST /alerts/<name>, its payload `type`, how it proves itself (`auth`)
    and the profile secret role that proof is made with (`key`, the Secret itself: it never prints)."""

    name: str
    type: str
    auth: str
    secret: str
    key: Secret = field(repr=False, compare=False)
    signature_header: str | None = None
    timestamp_header: str | None = None

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """None when the request carries this sender's proof; Refused(401, one line) otherwise."""
        inbound.verify(self.auth, self.key.reveal(), headers, body, signature_header=self.signature_header,
                       timestamp_header=self.timestamp_header)

    def parse(self, body: bytes) -> list[Alert]:
        """The alerts in a body of this sender's type (inbound.parse); Refused(400, one line) otherwise."""
        return inbound.parse(self.type, body, self.name)


@dataclass(frozen=True)
class Match:
    label: str
    value: str
    pattern: re.Pattern[str] | None = None   # for a `~regex` value

    def __call__(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label)
        if got is None:
            return False
        return bool(self.pattern.fullmatch(got)) if self.pattern else got == self.value


@dataclass(frozen=True)
class Route:
    """Alerts whose labels match start `runbook` in `environment` with the rendered `parameters`."""

    name: str
    match: tuple[Match, ...]
    runbook: str
    environment: str
    parameters: Mapping[str, str]          # name: template source, as written
    incident: str | None
    notify: notify.Notify | None
    dedup_minutes: int
    templates: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)   # compiled

    def matches(self, alert: Alert) -> bool:
        return all(m(alert.labels) for m in self.match)


@dataclass(frozen=True)
class Routing:
    """The checked routes file."""

    path: Path
    serve: Settings
    senders: tuple[Sender, ...]
    routes: tuple[Route, ...]

    def sender(self, name: str) -> Sender | None:
        return next((s for s in self.senders if s.name == name), None)

    def match(self, alert: Alert) -> Route | None:
        """The first route that matches the alert's labels, or None."""
        return next((r for r in self.routes if r.matches(alert)), None)


def default_path() -> Path:
    return paths.params_dir() / "routes.yaml"


def load(path: Path | None = None) -> Routing:
    """The routes file, every part checked; UsageError (one line naming the file, the entry and what is valid) on
    the first problem. Nothing is served or written."""
    path = Path(path or default_path())
    where = f"routes file {show(str(path), 200)}"
    data = read_yaml_file(path, where, "params/routes.yaml")
    if not isinstance(data, dict) or set(data) != set(TOP):
        raise UsageError(f"{where} must hold exactly `serve:`, `senders:` and `routes:` (an example: "
                         "params/routes.yaml)")
    settings = _settings(data["serve"], f"{where}, serve")
    profile = load_environment(settings.environment)
    senders = _entries(data["senders"], f"{where}, senders", "sender", lambda item, at: _sender(item, at, profile))
    routes = _entries(data["routes"], f"{where}, routes", "route", lambda item, at: _route(item, at, settings))
    return Routing(path, settings, tuple(senders), tuple(routes))


def _entries(raw: Any, where: str, what: str, make) -> list:
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{where} must be a non-empty list of {what}s")
    made: list = []
    for number, item in enumerate(raw, 1):
        entry = make(item, f"{where}, {what} {number}")
        if any(e.name == entry.name for e in made):
            raise UsageError(f"{where}, {what} {number}: the name '{entry.name}' is used twice; names are unique")
        made.append(entry)
    return made


def _settings(raw: Any, where: str) -> Settings:
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a mapping with keys {', '.join(SERVE_KEYS)}")
    _known(raw, SERVE_KEYS, where)
    env = raw.get("environment")
    if not isinstance(env, str) or env not in environment_names():
        raise UsageError(f"{where}: `environment` {show(env) if isinstance(env, str) else 'is required: it'} must "
                         f"be a profile whose secrets authenticate senders; valid: {', '.join(environment_names())}")
    numbers = {key: _number(raw, key, where) for key in LIMITS}
    return Settings(env, **numbers)


def _number(raw: Mapping[str, Any], key: str, where: str) -> int:
    default, least, most = LIMITS[key]
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise UsageError(f"{where}: `{key}` {show(value)} is not valid; valid: a whole number from {least} to "
                         f"{most} (default {default})")
    return value


def _known(raw: Mapping[Any, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in raw if k not in keys]
    if unknown:
        raise UsageError(f"{where}: unknown key {show(unknown[0])}; valid: {', '.join(keys)}")


def _named(item: Any, keys: tuple[str, ...], where: str) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be a mapping with keys {', '.join(keys)}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{where} needs a name: letters, digits, '.', '_' or '-' (at most 64, e.g. alertmanager)")
    where = f"{where} ('{name}')"
    _known(item, keys, where)
    return name, where


def _sender(item: Any, where: str, profile) -> Sender:
    name, where = _named(item, SENDER_KEYS, where)
    kind = item.get("type")
    if kind not in AUTH_OF:
        raise UsageError(f"{where}: `type` {show(kind) if kind else 'is required: it'} must be one of "
                         f"{', '.join(AUTH_OF)}")
    auth = item.get("auth")
    if auth not in AUTH_OF[kind]:
        raise UsageError(f"{where}: `auth` {show(auth) if auth else 'is required: it'} must be one of "
                         f"{', '.join(AUTH_OF[kind])} for type {kind}")
    role = item.get("secret")
    if not isinstance(role, str) or not role:
        raise UsageError(f"{where}: `secret` is required: the secret role in environment '{profile.name}' that "
                         "holds the sender's token or signing secret")
    key = profile.secret(role)
    if key is None:
        hint = "" if role in profile.secret_vars else \
            f" (name its variable under secrets: in params/environments/{profile.name}.yaml)"
        raise UsageError(f"{where}: {profile.missing_secret_message(role)}{hint}")
    headers = {k: item.get(k) for k in ("signature_header", "timestamp_header")}
    for key_name, value in headers.items():
        if value is not None and (auth != "grafana-hmac" or not isinstance(value, str) or not HEADER.fullmatch(value)):
            raise UsageError(f"{where}: `{key_name}` is only for auth grafana-hmac and must be a header name (e.g. "
                             "X-Grafana-Alerting-Timestamp)")
    return Sender(name, kind, auth, role, key, headers["signature_header"], headers["timestamp_header"])


def _route(item: Any, where: str, settings: Settings) -> Route:
    name, where = _named(item, ROUTE_KEYS, where)
    for key in ("runbook", "environment"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise UsageError(f"{where}: `{key}` is required and must be text")
    match = _match(item.get("match"), where)
    try:
        info = load_runbook(item["runbook"])
        profile = load_environment(item["environment"])
    except AiasError as exc:
        raise UsageError(f"{where}: {exc}") from None
    params = _parameters(item.get("parameters"), info, where)
    incident = item.get("incident")
    if incident is not None and (not isinstance(incident, str) or not incident.strip()):
        raise UsageError(f"{where}: `incident` must be a template of the incident id (e.g. \"{{{{ alert.incident "
                         "}}\"; default: PagerDuty's incident number, else alert-<the group's id>)")
    templates = {key: _compile(value, f"{where}: parameter '{key}'") for key, value in params.items()}
    if incident is not None:
        templates[""] = _compile(incident, f"{where}: `incident`")
    notice = notify.parse(item["notify"], profile, where) if item.get("notify") is not None else None
    dedup = _number({"dedup_minutes": item.get("dedup_minutes", settings.dedup_minutes)}, "dedup_minutes", where)
    return Route(name, match, info.slug, profile.name, params, incident, notice, dedup, templates)


def _match(raw: Any, where: str) -> tuple[Match, ...]:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: `match` must be a mapping of label: value (or ~regex), e.g. {{alertname: "
                         "HighErrorRate}; {} matches every alert")
    matches = []
    for label, value in raw.items():
        if not isinstance(label, str) or not label or not isinstance(value, str):
            raise UsageError(f"{where}: `match` {show(label)}: label names and values must be text (quote numbers "
                             "and true/false)")
        pattern = None
        if value.startswith("~"):
            try:
                pattern = re.compile(value[1:])
            except re.error as exc:
                raise UsageError(f"{where}: `match` {show(label)}: {show(value)} is not a regular expression "
                                 f"({exc.msg}); valid: ~ then a Python regex, matched against the whole value") \
                    from None
        matches.append(Match(label, value, pattern))
    return tuple(matches)


def _parameters(raw: Any, info, where: str) -> dict[str, str]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: `parameters` must be a mapping of name: value or \"template\"")
    params = {}
    valid = ", ".join(p for p in info.parameters if p not in (ENV_PARAM, *NOT_FROM_ALERTS)) or "none"
    for key, value in raw.items():
        key = str(key)
        if key == ENV_PARAM:
            raise UsageError(f"{where}: set the environment with the route's `environment`, not a parameter")
        if key in NOT_FROM_ALERTS:
            raise UsageError(f"{where}: parameter '{key}' cannot be set by an alert: an alert starts a diagnosis, "
                             "a guarded action needs a person (run it by hand with --operator)")
        if key not in info.parameters:
            raise UsageError(f"{where}: runbook '{info.slug}' has no parameter {show(key)}; valid: {valid}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = repr(value) if isinstance(value, float) else str(value)
        if not isinstance(value, str):
            raise UsageError(f"{where}: parameter '{key}' must be a value or a \"template\" (text)")
        params[key] = value
    return params


def _compile(source: str, where: str):
    try:
        return TEMPLATES.from_string(source)
    except TemplateError as exc:
        raise UsageError(f"{where} is not a valid template ({show(exc.message or type(exc).__name__, 120)}); "
                         "valid: text with {{ labels.NAME }}, {{ annotations.NAME }}, {{ alert.window_minutes }}...") \
            from None


def job_for(route: Route, alert: Alert, now: datetime | None = None, output: Path | None = None) -> Job:
    """The run an alert asks for: the route's parameters rendered from the alert, then checked as `run -p`
    checks them (parse_pairs, prepare() with make_root=False: nothing is written). UsageError (one line naming
    the route and the problem) refuses the alert."""
    where = f"route '{route.name}'"
    context = {"labels": dict(alert.labels), "annotations": dict(alert.annotations), "alert": alert.context(now)}
    pairs = [f"{key}={_render(route.templates[key], context, f'{where}: parameter {key!r}')}"
             for key in route.parameters]
    incident = _render(route.templates[""], context, f"{where}: `incident`").strip() if route.incident \
        else alert.incident or f"alert-{alert.group_id}"
    if not INCIDENT.fullmatch(incident):
        raise UsageError(f"{where}: incident id {show(incident)} is not valid; use letters, digits, '.', '_' or '-' "
                         "(at most 64, e.g. INC-1234)")
    try:
        request = prepare(route.runbook, route.environment, parse_pairs(pairs), incident, None, output,
                          make_root=False)
    except AiasError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return Job(request.info.slug, request.profile.name, request.parameters, request.incident)


def _render(template, context: dict[str, Any], where: str) -> str:
    try:
        return template.render(context)
    except UndefinedError as exc:
        raise UsageError(f"{where} names what the alert does not have ({printable(exc.message or '')[:200]}); valid: "
                         f"the alert's labels: {show(', '.join(sorted(context['labels'])), 200)}") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise UsageError(f"{where} cannot be rendered for this alert ({type(exc).__name__}: "
                         f"{show(str(exc), 120)})") from None


__all__ = ["Match", "Refused", "Route", "Routing", "Sender", "Settings", "clamp", "default_path", "job_for", "load"]
