"""Fixtures and hooks: one real sandbox per test session (its own folder and ports), a scenario switch, `run` (the
real CLI into a fresh output folder), `quiet`. Helpers the tests share are in helpers.py."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from aias_runbooks import paths

from .helpers import Run, cli, forget_recent_failures, free_port_base

# libpq's GSSAPI (Kerberos) set-up is not thread-safe: a connect in one thread while another thread runs a query
# can segfault (psycopg issues 1213, 1229; seen once in tests/runbooks/test_database_connection_errors_locks.py).
# Local servers have no Kerberos.
os.environ.setdefault("PGGSSENCMODE", "disable")


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


@pytest.fixture
def quiet(sandbox) -> None:
    """A healthy platform with no failure that an earlier test file on this worker simulated in the last hour."""
    forget_recent_failures()


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


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server for the worker's session (tests/s3.py); its endpoint URL."""
    from .s3 import moto_s3
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_archive(s3_server) -> str:
    """A fresh bucket on the worker's S3 server: `s3://<bucket>/reports`, for --archive."""
    from .s3 import make_bucket
    return f"s3://{make_bucket()}/reports"
