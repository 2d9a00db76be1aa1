"""A running console for the tests: a real `aias-runbooks serve` process (console under /console/) on a free port, its
users, and reports filed as runs file them. conftest.py gives it as fixtures; tests import from here.

Each server runs in its own checkout home (AIAS_HOME: the repository's notebooks and params, plus a `console-test`
profile carrying the console's settings and a canary secret), with three users and their tokens:

    viewer   "val"    viewer
    operator "alice"  operator   (A: files approval requests)
    approver "bob"    approver   (B: approves them)

`console` is the default server; `start_console(...)` starts one with other settings (a trusted proxy header, an
archive elsewhere). `Console.file_report(...)` files a report as a run files it (a real Verdict written by
report.write_report, its record by catalog.file_run), without running a notebook. A test that needs real runs (a
rerun) asks for the `sandbox` fixture before `console`: the serve process inherits the sandbox's environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import nbformat
import yaml

from aias_runbooks.findings import Finding, Verdict
from aias_runbooks.runner import catalog
from aias_runbooks.runner.report import make_run_dir, provenance, write_report
from aias_runbooks.runner.store import open_archive

from ..helpers import CLI, ROOT, admin_session, free_port_base, stop_serve, wait_for

PROFILE = "console-test"
CANARY_VAR = "AIAS_CONSOLE_TEST_CANARY"          # a profile secret no page may show
SENDER_VAR = "AIAS_CONSOLE_TEST_ALERT_TOKEN"     # the routes file's sender secret (serve needs one sender)
USERS = {"viewer": ("val", "viewer"), "operator": ("alice", "operator"), "approver": ("bob", "approver")}
RUN_DEADLINE_S = 240   # a run started by the console, from its POST to its record in the catalogue
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    """A running serve with its console: its URL, output (report root) and archive, its users' tokens by role
    ("viewer", "operator", "approver") and names, the canary secret, serve's own output lines."""

    url: str
    home: Path
    output: Path
    archive: Path | str          # a folder, or s3://bucket/prefix
    tokens: dict[str, str]
    names: dict[str, str]
    canary: str
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)

    def client(self, role: str | None = "viewer", **kwargs: Any) -> httpx.Client:
        """An HTTP client for the console; `role` authenticates each request with that user's bearer token (None:
        no user)."""
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, follow_redirects=False, **kwargs)

    def login(self, role: str) -> httpx.Client:
        """A client logged in through the login form (a session cookie, as a browser is)."""
        client = httpx.Client(base_url=self.url, timeout=60, follow_redirects=False)
        page = client.get("/console/login")
        answer = client.post("/console/login", data={"token": self.tokens[role], "csrf": csrf_of(page.text)})
        assert answer.status_code == 303, (answer.status_code, answer.text)
        return client

    def csrf(self, client: httpx.Client, path: str = "/console/") -> str:
        """The CSRF token the console's forms carry for this client's user (read from a page's form)."""
        page = client.get(path)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        return csrf_of(page.text)

    def file_report(self, runbook: str = "health-check", env: str = "sandbox", findings: list[Finding] | None = None,
                    incident: str | None = None, parameters: dict[str, Any] | None = None,
                    started: datetime | None = None, operator: str = "alice", archive: Path | str | None = None,
                    ) -> dict[str, Any]:
        """File one run's report into the archive as execute.finish does (verdict.json, report.html and
        notebook.ipynb written by report.write_report, then its catalogue record): its record."""
        return file_report(archive or self.archive, runbook, env, findings, incident, parameters, started, operator)

    def audit(self) -> list[dict]:
        """The console's own audit records (<output>/.console/audit.jsonl)."""
        import json
        path = self.output / ".console" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def stop(self) -> None:
        stop_serve(self.proc)


def csrf_of(page: str) -> str:
    """The value of the first `csrf` hidden field of a page."""
    found = CSRF_FIELD.search(page)
    assert found, f"no csrf field in the page: {page[:300]}"
    return found.group(1)


def file_report(archive: Path | str, runbook: str = "health-check", env: str = "sandbox",
                findings: list[Finding] | None = None, incident: str | None = None,
                parameters: dict[str, Any] | None = None, started: datetime | None = None,
                operator: str = "alice") -> dict[str, Any]:
    """A report folder and its catalogue record, as a real run files them (see Console.file_report); `archive` a
    folder or an s3://bucket/prefix (the report is written locally, then put there whole, as execute.py does)."""
    started = started or datetime.now(timezone.utc)
    found = findings if findings is not None else [Finding("API_OK", "OK", "The API answered 20 of 20 requests.")]
    run_id = f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    verdict = Verdict(runbook, env, run_id, found)
    prov = provenance(run_id, runbook, env, incident, operator, started, started, parameters or {})
    staging = Path(tempfile.mkdtemp(prefix="aias-console-report-")) if str(archive).startswith("s3://") else None
    folder = make_run_dir(staging or Path(archive), started, runbook, env, incident)
    write_report(folder, nbformat.v4.new_notebook(), verdict, prov)
    rel = folder.relative_to(staging or Path(archive)).as_posix()
    if staging is not None:
        open_archive(str(archive)).put_folder(folder, rel)
        shutil.rmtree(staging)
    record = {"run_id": run_id, "runbook": runbook, "env": env, "incident": incident,
              "status": verdict.status.value, "exit_code": verdict.status.exit_code, "summary": verdict.summary,
              "top_finding": verdict.top.code if verdict.top else None, "started_at": prov["started_at"],
              "finished_at": prov["finished_at"], "duration_s": prov["duration_s"],
              "report_dir": rel, "redactions": 0, "error": None, "entry": None,
              "host": prov["host"], "codes": sorted({f.code for f in found})}
    catalog.file_run(catalog.at(archive), record)
    return record


def make_home(base: Path, console_settings: dict[str, Any]) -> Path:
    """A checkout home for serve: the repository's top-level entries linked, params/ of links but for the
    console-test profile (the console's settings, the canary and sender secrets) and the users file."""
    home = base / "home"
    home.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("params", ".env", "output", ".sandbox"):
            (home / entry.name).symlink_to(entry)
    params = home / "params"
    params.mkdir()
    for entry in (ROOT / "params").iterdir():
        if entry.name not in ("environments", "console_users.yaml", "routes.yaml"):
            (params / entry.name).symlink_to(entry)
    environments = params / "environments"
    environments.mkdir()
    for entry in (ROOT / "params" / "environments").glob("*.yaml"):
        (environments / entry.name).symlink_to(entry)
    profile = {"description": "the console tests' serve profile", "sandbox": True, "api_base_url": "http://127.0.0.1:9",
               "secrets": {"alertmanager_token": SENDER_VAR, "console_canary": CANARY_VAR},
               "console": console_settings}
    (environments / f"{PROFILE}.yaml").write_text(yaml.safe_dump(profile))
    (params / "routes.yaml").write_text(
        f"serve: {{environment: {PROFILE}}}\n"
        "senders:\n  - {name: alertmanager, type: alertmanager, auth: bearer, secret: alertmanager_token}\n"
        "routes:\n  - {name: errors, match: {alertname: HighErrorRate}, runbook: health-check, "
        "environment: sandbox}\n")
    return home


def write_users(path: Path) -> dict[str, str]:
    """The three users with fresh tokens (their sha256 in the file, as `console add-user` stores them): the tokens
    by role."""
    tokens = {role: secrets.token_urlsafe(32) for role in USERS}
    users = [{"name": name, "role": role_name, "token_sha256": hashlib.sha256(tokens[role].encode()).hexdigest()}
             for role, (name, role_name) in USERS.items()]
    path.write_text(yaml.safe_dump({"users": users}, sort_keys=False))
    return tokens


def start(base: Path, console_settings: dict[str, Any] | None = None, archive: Path | str | None = None) -> Console:
    """serve with the console on a free port; `console_settings` the profile's `console:` (users_file is filled
    in), `archive` the profile's archive, a folder or s3://bucket/prefix (default: the output folder)."""
    base.mkdir(parents=True, exist_ok=True)
    users_file = base / "console_users.yaml"
    tokens = write_users(users_file)
    settings = {"users_file": str(users_file)} | (console_settings or {})
    home = make_home(base, settings)
    output = base / "output"
    output.mkdir()
    if archive is not None:
        profile_path = home / "params" / "environments" / f"{PROFILE}.yaml"
        profile = yaml.safe_load(profile_path.read_text()) | {"archive": str(archive)}
        profile_path.write_text(yaml.safe_dump(profile))
    canary = "canary-" + secrets.token_hex(12)
    port = free_port_base()
    console = Console(f"http://127.0.0.1:{port}", home, output, archive or output, tokens,
                      {role: name for role, (name, _) in USERS.items()}, canary)
    env = os.environ | {"AIAS_HOME": str(home), CANARY_VAR: canary, SENDER_VAR: "sender-" + secrets.token_hex(12)}
    console.proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--output", str(output)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL)

    def read() -> None:
        for line in console.proc.stdout:
            console.lines.append(line.rstrip("\n"))
    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: f"serving on {console.url}" in console.lines or console.proc.poll() is not None, 60,
             "serve (with the console) to listen")
    assert console.proc.poll() is None, console.lines
    return console




def filed(console: Console, run_id: str) -> dict:
    """The run's catalogue record once it is filed (waited for with a deadline)."""
    wait_for(lambda: catalog.record(console.archive, run_id) is not None, RUN_DEADLINE_S,
             f"run {run_id} to be filed")
    return catalog.record(console.archive, run_id)


LEAKING = "aias-api/export-worker"   # the application whose sessions scenario db-connection-leak leaves idle


def leaked_sessions() -> int:
    """Sessions of the leaking application still open (scenario db-connection-leak)."""
    with admin_session() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (LEAKING,)).fetchone()[0]
