"""Environment profiles (params/environments/<name>.yaml) and the secrets they name.

A profile holds only non-secret settings and the *names* of the environment variables that hold
secrets. Values come from the process environment, then the profile's env_file, then the project .env.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values

from . import paths
from .errors import UsageError
from .printable import show

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMAIL = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}")


class Secret:
    """A secret value that never prints itself; call reveal() at the point of use."""

    __slots__ = ("name", "_value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name}=***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("secrets are not pickled")


@dataclass(frozen=True)
class Environment:
    """One target platform: where its API lives and which env vars hold its secrets."""

    name: str
    description: str
    api_base_url: str
    stripe_api_base: str | None
    urls: Mapping[str, str]          # the hosted services' API bases and status pages, by name (profile `urls:`)
    vercel_project: str              # the Vercel project whose deployments serve the API
    secret_vars: Mapping[str, str]
    thresholds: Mapping[str, Any]
    is_sandbox: bool
    _values: Mapping[str, str] = field(repr=False)
    backups: Mapping[str, Any] = field(default_factory=dict)   # profile `backups:` (folder expanded), database-backup
    migrations: Mapping[str, Any] = field(default_factory=dict)   # profile `migrations:` (folder expanded), migrations
    known_origins: tuple[str, ...] = ()   # profile `known_origins:`: the CIDRs the platform's own services call from
    archive: str | None = None           # profile `archive:`: where reports are filed (a folder or s3://bucket/prefix)
    report_base_url: str | None = None   # profile `report_base_url:`: where the output folder is served (links)
    pagerduty_from: str | None = None    # profile `pagerduty_from:`: a PagerDuty user's email, incident notes' From
    # profile `approvals:`: which guarded actions need a second person's approval before an apply (four-eyes):
    # "required" (all), "off" (none) or the actions named; default required, off for a sandbox
    approvals: str | tuple[str, ...] = "off"
    # profile `disk_budget_gb:`: the disk the database may fill (database-health judges its databases and WAL
    # against it); None: sizes are shown, not judged
    disk_budget_gb: float | None = None

    def requires_approval(self, action: str) -> bool:
        """Whether an apply of this guarded action (its ACTION name) needs an approved request under this profile."""
        return self.approvals == "required" or (isinstance(self.approvals, tuple) and action in self.approvals)

    def secret(self, role: str) -> Secret | None:
        """The secret for a role such as 'database_url', or None when it is not set."""
        var = self.secret_vars.get(role)
        value = self._values.get(var) if var else None
        return Secret(var, value) if value else None

    def secrets(self) -> dict[str, Secret]:
        return {role: s for role in self.secret_vars if (s := self.secret(role))}

    def missing_secret_message(self, role: str) -> str:
        var = self.secret_vars.get(role, f"<no variable named for '{role}' in the profile>")
        hint = "run `aias-runbooks sandbox up`" if self.is_sandbox else f"set {var} in the environment or .env"
        return f"{role} is not configured for environment '{self.name}': {hint}"


    def check_ready(self) -> None:
        """UsageError when the target cannot even be addressed: the sandbox is not up, or no API URL is set."""
        if self.is_sandbox and not self.api_base_url:
            raise UsageError("the sandbox is not running: start it with `aias-runbooks sandbox up` (or `make demo`)")
        if not self.api_base_url:
            raise UsageError(f"environment '{self.name}' has no api_base_url; set it in "
                             f"params/environments/{self.name}.yaml")


def environment_names() -> list[str]:
    folder = paths.params_dir() / "environments"
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.endswith(".example.yaml"))


def load_environment(name: str) -> Environment:
    """Load a profile by name; UsageError names the valid ones."""
    path = paths.params_dir() / "environments" / f"{name}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not path.is_file():
        valid = ", ".join(environment_names()) or "none"
        raise UsageError(f"unknown environment '{name}'; valid: {valid} (profiles live in {path.parent})")
    raw = _raw_profile(name)
    values = _values(raw.get("env_file"))
    secret_vars = dict(raw.get("secrets") or {})
    return Environment(
        name=name,
        description=raw.get("description", ""),
        api_base_url=_expand(raw.get("api_base_url", ""), values).rstrip("/"),
        stripe_api_base=_expand(raw.get("stripe_api_base"), values) or None,
        urls={name: _expand(url, values).rstrip("/") for name, url in (raw.get("urls") or {}).items()},
        vercel_project=str(raw.get("vercel_project") or ""),
        secret_vars=secret_vars,
        thresholds=raw.get("thresholds") or {},
        is_sandbox=bool(raw.get("sandbox", False)),
        # only what the profile names: an env file may hold more (the sandbox's admin URL) than runbooks may see
        _values={var: values[var] for var in secret_vars.values() if var in values},
        backups=_backups(raw.get("backups")),
        migrations=_backups(raw.get("migrations")),   # the same {sandbox_dir}/{root} expansion of its folder
        known_origins=tuple(str(c) for c in raw.get("known_origins") or ()),
        report_base_url=_report_base_url(_expand(raw.get("report_base_url"), values), name),
        archive=_expand(raw.get("archive"), values) or None,
        pagerduty_from=_pagerduty_from(raw.get("pagerduty_from"), name),
        approvals=_approvals(raw.get("approvals"), bool(raw.get("sandbox", False)), name),
        disk_budget_gb=_disk_budget(raw.get("disk_budget_gb"), name),
    )


# The guarded actions (each aias_runbooks/actions module's ACTION), as a profile's `approvals:` list may name them.
GUARDED_ACTIONS = ("terminate_leaked_sessions", "revoke_credentials", "restore_database", "retry_executions",
                   "rollback_deployment", "apply_migrations", "clear_rate_limit", "reconcile_subscriptions")


def _raw_profile(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A profile's YAML with the profile it `extends:` (recursively) merged under it: a mapping merges key by key,
    any other value of this profile replaces the base's. UsageError for an unknown base or a cycle."""
    path = paths.params_dir() / "environments" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise UsageError(f"environment '{name}': params/environments/{name}.yaml must be a mapping of settings")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    base_path = paths.params_dir() / "environments" / f"{base}.yaml"
    if not isinstance(base, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", base) or not base_path.is_file():
        raise UsageError(f"environment '{name}': extends {show(base)} is not a profile; valid: "
                         f"{', '.join(environment_names()) or 'none'} (params/environments/{name}.yaml)")
    if base in (*seen, name):
        raise UsageError(f"environment '{(*seen, name)[0]}': extends {' -> '.join((*seen, name, base))} is a cycle; "
                         "a profile may extend another only once along the chain")
    return _merged(_raw_profile(base, (*seen, name)), raw)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def _approvals(value: Any, sandbox: bool, name: str) -> str | tuple[str, ...]:
    """The profile's `approvals:`: "required", "off" or a list of guarded actions; unset: off for a sandbox,
    required for any other profile (a real platform). UsageError (one line) otherwise."""
    if value is None:
        return "off" if sandbox else "required"
    if value is False:       # YAML reads a bare `off` as false
        return "off"
    if value in ("required", "off"):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v in GUARDED_ACTIONS for v in value):
        return tuple(value)
    raise UsageError(f"environment '{name}': approvals {show(value)} is not valid; valid: required, off, or a list "
                     f"of guarded actions ({', '.join(GUARDED_ACTIONS)}) in params/environments/{name}.yaml")


def _disk_budget(value: Any, name: str) -> float | None:
    """The profile's `disk_budget_gb`: a positive number of GB (the plan's disk, e.g. 8 for Supabase's included
    disk), or None when unset. UsageError (one line) otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1_000_000:
        raise UsageError(f"environment '{name}': disk_budget_gb {show(value)} is not valid; valid: a positive number "
                         f"of GB the database's disk holds (e.g. 8) in params/environments/{name}.yaml")
    return float(value)


def _report_base_url(url: str, name: str) -> str | None:
    """The profile's `report_base_url` (None when unset or empty): an http(s) URL with a host and no credentials,
    query or fragment, since each report's path is joined to it and the result is sent in notifications and
    pages. UsageError (one line) otherwise."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        valid = (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None
                 and parts.password is None and not parts.query and not parts.fragment)
    except ValueError:
        valid = False
    if not valid:   # a URL holding credentials is not quoted
        quoted = "(holding credentials)" if "@" in url else show(url)
        raise UsageError(f"environment '{name}': report_base_url {quoted} is not valid; valid: an http(s) URL "
                         "where the output folder is served, without credentials, query or fragment (e.g. "
                         f"https://runbooks.example.com/reports) in params/environments/{name}.yaml")
    return url.rstrip("/")


def _pagerduty_from(address: Any, name: str) -> str | None:
    """The profile's `pagerduty_from`: the email of a PagerDuty user (the From header of incident notes)."""
    if address is None or address == "":
        return None
    if not isinstance(address, str) or not _EMAIL.fullmatch(address):
        raise UsageError(f"environment '{name}': pagerduty_from {show(address)} is not an email address; valid: the "
                         f"email of a user of your PagerDuty account (e.g. oncall-bot@example.com) in "
                         f"params/environments/{name}.yaml")
    return address


def _backups(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The profile's `backups:` with its folder as a path: {sandbox_dir} and {root} filled in, relative to the root."""
    settings = dict(raw or {})
    if settings.get("folder"):
        folder = Path(str(settings["folder"]).format(sandbox_dir=paths.sandbox_dir(), root=paths.project_root()))
        settings["folder"] = folder if folder.is_absolute() else paths.project_root() / folder
    return settings


def _values(env_file: str | None) -> dict[str, str]:
    """Process environment over the profile's env_file over the project .env."""
    merged: dict[str, str] = {}
    files = [paths.project_root() / ".env"]
    if env_file:
        files.append(Path(env_file.format(sandbox_dir=paths.sandbox_dir(), root=paths.project_root())))
    for file in files:
        if file.is_file():
            merged.update({k: v for k, v in dotenv_values(file).items() if v is not None})
    merged.update(os.environ)
    return merged


def _expand(value: str | None, values: Mapping[str, str]) -> str:
    if not value:
        return ""
    return _VAR.sub(lambda m: values.get(m.group(1), ""), str(value))
