"""Each runbook against each dependency it has, failing every way we know: stopped, killed mid-run, slower
than its timeouts, and answering a byte at a time. Always a report, exit 2 or 3, the unreachable target named,
never a bare traceback."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from aias_runbooks.sandbox.platform.database import postgres, schema

from ..helpers import CLI, Target, free_port_base, sandbox_dsn, wait_for

BOUND_S = 180   # no fault may make a run hang: well under the 300 s cell timeout, with room for a loaded machine
DB_RUNBOOKS = ["database-connection-errors", "database-health"]
BILLING_RUNBOOKS = ["stripe-webhook-failures", "incident-payment-issues"]    # the app's records live in it too


@dataclass
class Victim:
    """A PostgreSQL server of the tests' own (the sandbox's binaries), to stop, kill and freeze at will."""

    binaries: postgres.Binaries
    data_dir: Path
    port: int
    dsn: str

    def start(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            postgres.start(self.binaries, self.data_dir, self.data_dir.parent / "postgres.log")

    def stop(self) -> None:
        postgres.stop(self.binaries.bindir, self.data_dir)

    def kill(self) -> None:
        subprocess.run([self.binaries.bindir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"],
                       capture_output=True, **postgres.run_as())

    @property
    def postmaster(self) -> int:
        return postgres.postmaster_pid(self.data_dir)


@pytest.fixture(scope="module")
def victim(sandbox):
    folder = Path(tempfile.mkdtemp(prefix="aias-test-victim-"))
    folder.chmod(0o755)
    binaries = postgres.find_binaries()
    password = secrets.token_urlsafe(12)
    port = free_port_base()
    postgres.init(binaries, folder / "data", password)
    postgres.configure(binaries, folder / "data", port)
    admin = f"postgresql://{postgres.SUPERUSER}:{password}@127.0.0.1:{port}/postgres"
    server = Victim(binaries, folder / "data", port, admin)
    server.start()
    schema.provision(admin, password)   # the tables the runbooks read, so a run gets well past its first query
    yield server
    server.kill()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture
def running_victim(victim):
    victim.start()
    yield victim
    if (victim.data_dir / "postmaster.pid").exists():
        os.kill(victim.postmaster, signal.SIGCONT)


def _run(output: Path, runbook: str, *params: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "run", runbook, *params, "--output", str(output)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ | env)


def _finished(proc: subprocess.Popen, output: Path) -> tuple[dict, str]:
    """The run ended within its bound with a report; returns its verdict and stderr."""
    stdout, stderr = proc.communicate(timeout=BOUND_S)
    assert proc.returncode in (2, 3), stdout + stderr
    assert "Traceback" not in stdout + stderr
    (folder,) = (p.parent for p in output.glob("*/*/verdict.json"))
    assert {"notebook.ipynb", "report.html"} <= {p.name for p in folder.iterdir()}
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["exit_code"] == proc.returncode
    return verdict, stderr


def _finding(verdict: dict, code: str) -> dict:
    found = [f for f in verdict["findings"] if f["code"] == code]
    assert found, [f["code"] for f in verdict["findings"]]
    return found[0]


@pytest.mark.parametrize("runbook", DB_RUNBOOKS + BILLING_RUNBOOKS)
def test_database_stopped(victim, runbook, tmp_path):
    victim.stop()
    output = tmp_path / "output"
    verdict, _ = _finished(_run(output, runbook, AIAS_SANDBOX_DATABASE_URL=victim.dsn), output)
    down = _finding(verdict, "DB_UNREACHABLE")
    assert down["severity"] == "CRITICAL" and verdict["exit_code"] == 2
    assert down["evidence"]["target"] == f"127.0.0.1:{victim.port}/postgres"
    assert "refused" in down["evidence"]["error"].lower()


def _backend(dsn: str, runbook: str, waiting: bool) -> int | None:
    """The runbook's server process, once it is connected (and, if asked, waiting on a lock)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s "
                           "AND (NOT %s OR wait_event_type = 'Lock')", (f"aias-runbooks/{runbook}/%", waiting)
                           ).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("fault", ["killed", "frozen"])
@pytest.mark.parametrize("runbook", DB_RUNBOOKS)
def test_database_dies_or_freezes_mid_run(running_victim, runbook, fault, tmp_path):
    """The run is held mid-way (database-connection-errors in its latency probe, database-health waiting on a
    table lock) and its own backend frozen, so it cannot finish first; then the server is killed, or left
    frozen: a server that never answers is cut off by the client-side bound, not waited on for the cell."""
    output = tmp_path / "output"
    holder = psycopg.connect(running_victim.dsn)
    if runbook == "database-health":
        holder.execute("LOCK TABLE public.profiles IN ACCESS EXCLUSIVE MODE")
    proc = _run(output, runbook, *(["-p", "latency_samples=400"] if "errors" in runbook else []),
                AIAS_SANDBOX_DATABASE_URL=running_victim.dsn)
    found: list[int] = []

    def held() -> bool:
        mid_run = runbook == "database-health" or any(
            "DB_POOL_OK" in p.read_text() for p in output.glob(".work/*/findings.jsonl"))
        pid = _backend(running_victim.dsn, runbook, waiting=runbook == "database-health") if mid_run else None
        found.extend([pid] if pid else [])
        return bool(pid) or proc.poll() is not None

    wait_for(held, 120, "the runbook to be mid-run")
    assert found, proc.communicate()
    os.kill(found[0], signal.SIGSTOP)
    try:
        if fault == "killed":
            running_victim.kill()
        verdict, _ = _finished(proc, output)
    finally:
        if fault == "frozen":
            os.kill(found[0], signal.SIGCONT)
        holder.close()
    down = _finding(verdict, "DB_UNREACHABLE")
    assert down["severity"] == "CRITICAL" and verdict["exit_code"] == 2
    assert "lost during the run" in down["evidence"]["error"]
    if fault == "frozen":
        assert "no answer from the database within 15 s" in down["evidence"]["error"]
    assert down["evidence"]["target"] == f"127.0.0.1:{running_victim.port}/postgres"
    assert len([f for f in verdict["findings"] if f["code"] == "DB_UNREACHABLE"]) == 1, "said once, not per query"


@pytest.mark.parametrize("runbook", DB_RUNBOOKS)
def test_database_slower_than_the_connect_timeout(running_victim, runbook, tmp_path):
    """A frozen server accepts the TCP connection and never answers: the 5 s connect timeout ends the wait."""
    os.kill(running_victim.postmaster, signal.SIGSTOP)
    output = tmp_path / "output"
    verdict, _ = _finished(_run(output, runbook, AIAS_SANDBOX_DATABASE_URL=running_victim.dsn), output)
    down = _finding(verdict, "DB_UNREACHABLE")
    assert down["severity"] == "CRITICAL" and "timeout" in down["evidence"]["error"].lower()


def test_api_killed_mid_run(scenario, sandbox, tmp_path):
    """The sandbox API dies during a long probe: it answered, then stopped; that is down now, not a blip."""
    state = json.loads((sandbox / "state.json").read_text())
    output = tmp_path / "output"
    proc = _run(output, "health-check", "-p", "samples=400", "-p", "interval_ms=50")

    def answered() -> bool:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            done = conn.execute("SELECT count(*) FROM api_requests WHERE path = '/api/healthz' "   # the probe's,
                                "AND ip = '127.0.0.1' AND created_at > now() - interval '5 seconds'"   # not the
                                ).fetchone()[0]                                                       # visitors'

        return done >= 5 or proc.poll() is not None

    wait_for(answered, 120, "the probe to get answers")
    os.kill(state["components"]["api"]["pid"], signal.SIGKILL)
    verdict, _ = _finished(proc, output)
    down = _finding(verdict, "API_DOWN")
    assert down["severity"] == "CRITICAL" and down["evidence"]["answered"] >= 5
    assert down["evidence"]["url"] == f"{state['components']['api']['url']}/api/healthz"
    # the scenario fixture switches back to healthy afterwards, which starts the API again


def test_api_slower_than_its_timeout(sandbox, tmp_path):
    """A port that accepts connections and never answers: each request times out, and the API is down."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        output = tmp_path / "output"
        verdict, _ = _finished(_run(output, "health-check", "-p", "timeout_s=0.5", AIAS_SANDBOX_API_URL=url), output)
    down = _finding(verdict, "API_DOWN")
    assert down["severity"] == "CRITICAL" and down["evidence"]["url"] == f"{url}/api/healthz"
    assert down["evidence"]["last_error"] == f"{url}/api/healthz: no complete answer within 0.5 s"


DRIPPING = [   # (runbook, the variable pointing at the dripping target, the finding that must name it)
    ("health-check", "AIAS_SANDBOX_API_URL", "API_DOWN"),
    ("incident-system-down", "AIAS_SANDBOX_API_URL", "API_DOWN"),
    ("stripe-webhook-failures", "AIAS_SANDBOX_STRIPE_API_BASE", "STRIPE_UNREACHABLE"),
    ("incident-payment-issues", "AIAS_SANDBOX_STRIPE_API_BASE", "STRIPE_UNREACHABLE"),
    ("workflows-not-executing", "AIAS_SANDBOX_SERVICES_URL", "EXTERNAL_API_DOWN"),
    ("signup-failures", "AIAS_SANDBOX_SERVICES_URL", "AUTH_UNHEALTHY"),
    ("full-system-check", "AIAS_SANDBOX_SERVICES_URL", "AUTH_UNHEALTHY"),
]


@pytest.mark.parametrize("runbook, variable, code", DRIPPING, ids=[f"{r}-{c}" for r, _, c in DRIPPING])
def test_a_target_answering_a_byte_at_a_time(sandbox, runbook, variable, code, tmp_path):
    """Each request has a total deadline, not a per-read timeout: a target that sends its answer a byte at a time
    is a finding naming it and the seconds it was given, within the run's bound, never the cell timeout."""
    output = tmp_path / "output"
    dripping = Target("drip", 0.5)
    try:
        verdict, _ = _finished(_run(output, runbook, **{variable: dripping.url}), output)
    finally:
        dripping.close()
    said = json.dumps(_finding(verdict, code))
    assert dripping.url in said and "no complete answer within" in said, said
    assert verdict["exit_code"] == 2 and "RUNBOOK_ERROR" not in {f["code"] for f in verdict["findings"]}
