"""One real sandbox per test session (its own folder and ports), and helpers to run the real CLI."""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.sandbox import processes
from aias_runbooks.settings import load_environment

# libpq's GSSAPI (Kerberos) set-up is not thread-safe: a connect in one thread while another thread runs a query
# can segfault (psycopg issues 1213, 1229; seen once in tests/test_locks.py). Local servers have no Kerberos.
os.environ.setdefault("PGGSSENCMODE", "disable")

CLI = [sys.executable, "-m", "aias_runbooks.cli"]


def free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(40000, 60000, 10)
        if all(processes.port_free(base + i) for i in range(5)):
            return base
    raise RuntimeError("no five consecutive free ports found (a sandbox uses base..base+4 with --pooler)")


def _sandbox_env() -> dict[str, str | None]:
    return dotenv_values(paths.sandbox_dir() / "sandbox.env")


def sandbox_dsn() -> str:
    """The running sandbox's superuser connection string (the test session's sandbox), for tests' setup."""
    return _sandbox_env()["AIAS_SANDBOX_ADMIN_DATABASE_URL"]


def app_dsn() -> str:
    """The application role's (aias_app) connection string: sessions the platform itself would open."""
    return _sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"]


def monitor_dsn() -> str:
    """What the runbooks connect with: the sandbox profile's database_url, the monitoring role aias_monitor."""
    return load_environment("sandbox").secret("database_url").reveal()


def sandbox_password() -> str:
    """The password of the DSN the runbooks use (the monitoring role's): it must never reach a report."""
    return urlsplit(monitor_dsn()).password


def cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ.copy())


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    output: Path

    @property
    def folders(self) -> list[Path]:
        return sorted(p.parent for p in self.output.glob("*/*/verdict.json"))

    @property
    def folder(self) -> Path:
        """This run's report folder, as the CLI printed it."""
        reports = [line.split("report: ", 1)[1] for line in self.proc.stdout.splitlines() if "report: " in line]
        assert len(reports) == 1, f"no report printed\n{self.proc.stdout}\n{self.proc.stderr}"
        return Path(reports[0]).parent

    @property
    def verdict(self) -> dict:
        return json.loads((self.folder / "verdict.json").read_text())

    @property
    def codes(self) -> dict[str, str]:
        return {f["code"]: f["severity"] for f in self.verdict["findings"]}


@pytest.fixture(scope="session")
def sandbox():
    """A real sandbox (Postgres, API, localstripe) in a temporary folder; stopped after the session."""
    folder = Path(tempfile.mkdtemp(prefix="aias-test-sandbox-"))
    folder.chmod(0o755)
    saved = {k: os.environ.get(k) for k in ("AIAS_SANDBOX_DIR", "AIAS_SANDBOX_PORT_BASE")}
    os.environ["AIAS_SANDBOX_DIR"] = str(folder)
    os.environ["AIAS_SANDBOX_PORT_BASE"] = str(free_port_base())
    started = cli("sandbox", "up")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield folder
    finally:
        cli("sandbox", "down")
        shutil.rmtree(folder, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def scenario(sandbox):
    """Switch the session's sandbox to a scenario; back to healthy afterwards."""
    def switch(name: str) -> None:
        result = cli("sandbox", "up", "--scenario", name)
        assert result.returncode == 0, result.stdout + result.stderr
    yield switch
    switch("healthy")


@pytest.fixture
def run(sandbox, tmp_path):
    """Run `aias-runbooks run ...` into a fresh output folder."""
    def go(*args: str, env: dict | None = None) -> Run:
        output = tmp_path / "output"
        return Run(cli("run", *args, "--output", str(output), env=env), output)
    return go


def finding(result: Run, code: str) -> dict:
    """The run's first finding with this code (StopIteration if it has none)."""
    return next(f for f in result.verdict["findings"] if f["code"] == code)


def table_text(result: Run) -> str:
    """The text of every table the run's notebook shows (pandas' HTML), unescaped, whitespace made single spaces:
    what a reader of the report sees in its tables."""
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    shown = ["".join(o["data"]["text/html"]) for c in nb["cells"] for o in c.get("outputs", [])
             if "dataframe" in "".join(o.get("data", {}).get("text/html", ""))]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", "\n".join(shown))).split())


def audit_records(result: Run) -> list[dict]:
    """Every record of the run's output/audit.jsonl, in order."""
    return [json.loads(line) for line in (result.output / "audit.jsonl").read_text().splitlines()]


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll condition() until it holds; fail naming what was awaited once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def admin_session(timeout: float = 15) -> psycopg.Connection:
    """A superuser session on the sandbox for a test's own setup and probes. A connection refused or dropped
    while it is being made is tried again until `timeout`: once on CI, one closed during authentication
    (no message from the server) failed a test before it began."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(sandbox_dsn(), autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def forget_recent_failures() -> None:
    """Forget the failures earlier tests of this session left in the last hour of the platform's history (5xx and
    4xx answers, logged errors such as refused emails, failed payments and webhook processing): a test that needs a
    quiet recent past (monitoring, triage, a healthy runbook) starts from the platform as a fresh `sandbox up` leaves
    it. Run it before switching to the test's scenario, which writes its own history."""
    with admin_session() as conn:
        conn.execute("DELETE FROM public.api_requests WHERE status >= 400 AND created_at > now() - interval '1 hour'")
        conn.execute("DELETE FROM public.error_logs WHERE created_at > now() - interval '1 hour'")
        conn.execute("DELETE FROM public.stripe_events WHERE received_at > now() - interval '1 hour' "
                     "AND (status = 'failed' OR type = 'invoice.payment_failed')")


@pytest.fixture
def quiet(sandbox) -> None:
    """A healthy platform with no failure that an earlier test file on this worker simulated in the last hour."""
    forget_recent_failures()


@contextmanager
def client_backends(total: int, application: str = "aias-api/oversized-pool") -> Iterator[None]:
    """Hold application connections (as aias_app) until `total` client backends are in use, counting a probe
    session that stays open meanwhile; all closed afterwards."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as probe:
        in_use = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                               ).fetchone()[0]
        held = [psycopg.connect(app_dsn(), application_name=application, autocommit=True)
                for _ in range(total - in_use)]
        try:
            yield
        finally:
            for conn in held:
                conn.close()


NOTABLE = re.compile(r"WARNING|ERROR|FATAL|PANIC|terminat|signal|shut|recovery")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the sandbox shows the tail of its server log: a crash or a refused connection on
    a CI machine is then explained in the CI output, not lost with the sandbox's temporary folder."""
    report = yield
    log = paths.sandbox_dir() / "logs" / "postgres.log"
    if report.failed and "sandbox" in item.fixturenames and os.environ.get("AIAS_SANDBOX_DIR") and log.is_file():
        lines = log.read_text(errors="replace").splitlines()[-5000:]
        notable = [line for line in lines if NOTABLE.search(line)][-40:]
        report.sections.append(("sandbox postgres.log: its last warnings, errors and terminations",
                                "\n".join(notable) or "(none)"))
    return report
