"""Runs that end badly: SIGTERM (once or repeatedly), SIGKILL of the runner, a full disk. Every recorded finding
reaches the verdict, no secret is left on disk, and nothing the run produced is lost."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from .conftest import CLI, wait_for
from .test_secrets import leaks

FIXTURES = Path(__file__).parent / "notebooks"


def _start(output: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "run", *args, "--output", str(output)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or os.environ.copy())


def _fixture_env(**extra: str) -> dict[str, str]:
    return os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURES)} | extra


def _recorded(output: Path, code: str) -> bool:
    """The run's findings journal (in its private workspace) holds the code."""
    return any(code in p.read_text(errors="replace") for p in output.glob(".work/*/findings.jsonl"))


def _printed_key_masked(output: Path) -> bool:
    """The workspace notebook holds the cell's printed key, already masked."""
    return any("[REDACTED]" in p.read_text(errors="replace") for p in output.glob(".work/*/notebook.ipynb"))


def _verdict(output: Path) -> dict:
    (path,) = output.glob("*/*/verdict.json")
    return json.loads(path.read_text())


def _codes(verdict: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in verdict["findings"]}


def test_a_critical_finding_recorded_in_a_quiet_cell_still_pages_after_sigterm(scenario, tmp_path):
    """The blocking chain is recorded (not displayed) early; SIGTERM during the long latency probe: exit 2."""
    scenario("blocking-locks")
    output = tmp_path / "output"
    proc = _start(output, "database-connection-errors", "-p", "latency_samples=500")
    wait_for(lambda: _recorded(output, "DB_BLOCKING_LOCKS") or proc.poll() is not None, 120,
             "the blocking chain to be recorded")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stdout + stderr
    codes = _codes(_verdict(output))
    assert codes["DB_BLOCKING_LOCKS"] == "CRITICAL" and codes["RUNBOOK_ERROR"] == "UNKNOWN"
    assert stderr == "", "a scheduler sees no kernel noise on stderr"
    assert stdout.startswith("CRITICAL: DB_BLOCKING_LOCKS")
    assert not list(output.glob(".work/*")), "the workspace is gone once the report is filed"


def test_a_scheduler_that_keeps_sending_sigterm_still_gets_the_report(sandbox, tmp_path):
    """SIGTERM every 50 ms until the runner exits: the first stops the notebook, the rest cannot lose the report."""
    output = tmp_path / "output"
    proc = _start(output, "stuck-check", env=_fixture_env())
    # the cell records the finding (journal, at once), then prints the key (reaches the notebook a moment later)
    hanging = lambda: _recorded(output, "CHECK_BEFORE_HANG") and _printed_key_masked(output)  # noqa: E731
    wait_for(lambda: hanging() or proc.poll() is not None, 60, "the finding and the masked key before the hang")
    assert proc.poll() is None, proc.communicate()
    for _ in range(600):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            continue
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, "the WARNING recorded before the hang outranks the interruption"
    verdict = _verdict(output)
    assert _codes(verdict) == {"CHECK_BEFORE_HANG": "WARNING", "RUNBOOK_ERROR": "UNKNOWN"}
    assert "interrupted" in verdict["findings"][-1]["evidence"]["error"]
    records = (output / "runs.jsonl").read_text().splitlines()
    assert len(records) == 1 and json.loads(records[0])["run_id"] == verdict["run_id"]
    assert {p.name for p in output.glob("*/*/*")} == {"notebook.ipynb", "report.html", "verdict.json"}
    assert not list(output.glob(".work/*"))
    assert not list(Path(tempfile.gettempdir()).glob(f"aias-kernel-{verdict['run_id']}-*")), "kernel sockets removed"
    assert stderr.splitlines() == ["  warning: 1 secret(s) were found in the report and redacted"], \
        "no kernel noise: only the note that the printed key was masked"


def _kernels_of(workspace: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(workspace) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_a_killed_runner_leaves_no_secret_and_the_next_run_files_its_report(run, tmp_path):
    canary = "canary-" + secrets.token_hex(12)
    output = tmp_path / "output"
    proc = _start(output, "stuck-check", env=_fixture_env(AIAS_SANDBOX_STRIPE_SECRET_KEY=canary))
    wait_for(lambda: any("[REDACTED]" in p.read_text() for p in output.glob(".work/*/notebook.ipynb")), 60,
             "the cell that prints the secret to be saved")
    (workspace,) = output.glob(".work/*")
    run_id = workspace.name
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not _kernels_of(workspace), 30, "the kernel to die with its runner")
    assert (workspace / "notebook.ipynb").is_file(), "the partial notebook survives the SIGKILL"
    secret = {"AIAS_SANDBOX_STRIPE_SECRET_KEY": canary}
    assert not leaks(secret, output), "no spelling of the secret in the workspace or anywhere under output/"
    for kernel_dir in Path(tempfile.gettempdir()).glob(f"aias-kernel-{run_id}-*"):
        assert not leaks(secret, kernel_dir)

    after = run("health-check", "-p", "samples=10")
    assert after.proc.returncode == 0, after.proc.stderr
    records = {r["run_id"]: r for r in map(json.loads, (output / "runs.jsonl").read_text().splitlines())}
    assert set(records) == {run_id, after.verdict["run_id"]}
    orphan = records[run_id]
    assert orphan["status"] == "WARNING" and "runner stopped" in orphan["error"]
    filed = json.loads((output / orphan["report_dir"] / "verdict.json").read_text())
    assert _codes(filed) == {"CHECK_BEFORE_HANG": "WARNING", "RUNBOOK_ERROR": "UNKNOWN"}
    assert canary not in (output / orphan["report_dir"] / "notebook.ipynb").read_text()
    assert not list(output.glob(".work/*"))
    assert not list(Path(tempfile.gettempdir()).glob(f"aias-kernel-{run_id}-*")), "its kernel's sockets removed"


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KB filesystem: enough for the run's workspace, not for its report."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_exit_3_and_the_next_run_files_the_report(sandbox, small_disk):
    output = small_disk / "output"
    full = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output)],
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 3
    assert full.stdout == ""
    (line,) = full.stderr.strip().splitlines()
    assert "No space left on device" in line and "the next run files it" in line
    assert not list(output.glob("*/*/report.html")), "no truncated report in the archive"
    (workspace,) = output.glob(".work/*")

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    again = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]
    assert [r["run_id"] for r in records][0] == workspace.name, "the stranded run is filed first"
    assert all(r["status"] == "OK" for r in records), "it had finished; only filing its report failed"
    assert len(list(output.glob("*/*/report.html"))) == 2 and not list(output.glob(".work/*"))
