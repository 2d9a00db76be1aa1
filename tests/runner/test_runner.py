"""The runner's promises: secrets never reach a report, failed runs keep their partial notebook."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest

from aias_runbooks.runner.execute import stop_signals
from aias_runbooks.settings import load_environment

from ..helpers import CLI, FIXTURE_NOTEBOOKS, leaks, runs, sandbox_password, wait_for


def _fixture_env(**extra: str) -> dict[str, str]:
    return os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)} | extra


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_canary_secret_is_redacted_everywhere(run):
    """leaky-check prints every secret in use, spelled every way, in chunks and in a coloured traceback."""
    pem = "\n".join(["-----BEGIN CANARY PRIVATE KEY-----", *(secrets.token_urlsafe(36) for _ in range(3)),
                     "-----END CANARY PRIVATE KEY-----"])
    canaries = {"AIAS_SANDBOX_STRIPE_SECRET_KEY": "canary-" + secrets.token_hex(12),
                "AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET": pem}
    result = run("leaky-check", env=_fixture_env(**canaries))
    assert result.proc.returncode == 3, "the notebook fails on purpose, quoting the key in its error"
    in_use = canaries | {"AIAS_SANDBOX_DATABASE_URL": load_environment("sandbox").secret("database_url").reveal()}
    assert not leaks(in_use, result.output, result.proc.stdout, result.proc.stderr), \
        "not in the report, runs.jsonl or index.html, in any spelling, nor in what the CLI prints"
    assert "[REDACTED]" in (result.folder / "notebook.ipynb").read_text()
    assert result.verdict["redactions"] >= 1
    (record,) = runs(result.output)
    assert "[REDACTED]" in record["error"] and record["redactions"] == result.verdict["redactions"]
    assert "redacted" in result.proc.stderr


def test_health_check_report_holds_no_secret(run):
    result = run("health-check", "-p", "samples=10")
    assert result.proc.returncode == 0
    assert sandbox_password() not in _all_text(result.output)
    assert result.verdict["redactions"] == 0


def test_failed_run_keeps_partial_notebook_and_findings(run):
    result = run("crashing-check", env=_fixture_env())
    assert result.codes == {"CHECK_BEFORE_CRASH": "WARNING", "RUNBOOK_ERROR": "UNKNOWN"}
    assert result.proc.returncode == 1, "the worst known finding decides, even when the run failed"
    error = next(f for f in result.verdict["findings"] if f["code"] == "RUNBOOK_ERROR")
    assert "RuntimeError: boom" in error["evidence"]["error"]
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "RuntimeError" for o in outputs), "the traceback stays in the notebook"
    assert (result.folder / "report.html").is_file()


def test_a_run_stopped_by_the_scheduler_still_leaves_its_report(sandbox, tmp_path):
    """SIGTERM (a scheduler's timeout) mid-run, nothing found yet: exit 3, the partial report written and catalogued."""
    output = tmp_path / "output"
    proc = subprocess.Popen([*CLI, "run", "health-check", "-p", "samples=300", "--output", str(output)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any("run id" in p.read_text() for p in output.glob(".work/*/notebook.ipynb"))
             or proc.poll() is not None, 60, "the runbook to start its probe")
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3
    verdict = json.loads(next(output.glob("*/*/verdict.json")).read_text())
    assert [f["code"] for f in verdict["findings"]] == ["RUNBOOK_ERROR"]
    assert "interrupted" in verdict["findings"][0]["evidence"]["error"]
    assert [r["status"] for r in runs(output)] == ["UNKNOWN"]
    assert "report: " in stdout


def test_reports_are_not_world_readable(run):
    """Reports hold other sessions' queries and client addresses: no folder of the archive is open to others."""
    result = run("health-check", "-p", "samples=10")
    assert result.proc.returncode == 0
    for folder in (result.output, result.folder.parent, result.folder):
        assert folder.stat().st_mode & 0o007 == 0, f"{folder} is open to others"
    assert not list(result.output.glob(".work/*")), "the private workspace is gone"


def test_a_stop_signal_while_the_report_is_filed_is_noted_not_raised():
    """The first SIGTERM stops the notebook; once it is done and its report is being filed (shielded), a first
    SIGTERM is noted, so the report is filed and the exit code is the verdict's, not 'interrupted'."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        with stop_signals() as stopped:
            stopped.shield()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stopped(), "the signal is noted"
        with pytest.raises(KeyboardInterrupt), stop_signals():
            os.kill(os.getpid(), signal.SIGTERM)
    finally:   # stop_signals leaves them ignored, as the runner is about to exit: not this test process
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("given", ["--output", "AIAS_OUTPUT_DIR"])
def test_a_relative_report_root_is_the_callers_folder(sandbox, tmp_path, given):
    """A relative --output (or AIAS_OUTPUT_DIR) names a folder under the caller's working directory, although the
    notebook runs in notebooks/: the report is filed there and the printed report path is absolute."""
    caller = tmp_path / "caller"
    caller.mkdir()
    args = [*CLI, "run", "health-check", "-p", "samples=10", "-p", "interval_ms=0"]
    env = os.environ.copy()
    if given == "--output":
        args += ["--output", "reports"]
    else:
        env["AIAS_OUTPUT_DIR"] = "reports"
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=caller, env=env)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout + proc.stderr
    (verdict,) = (caller / "reports").glob("*/*/verdict.json")
    assert json.loads(verdict.read_text())["status"] == "OK"
    assert [r["run_id"] for r in runs(caller / "reports")] \
        == [json.loads(verdict.read_text())["provenance"]["run_id"]]
    printed = Path(proc.stdout.split("report: ", 1)[1].strip())
    assert printed.is_absolute() and printed == verdict.parent / "report.html"
    assert not list((caller / "reports").glob(".work/*")), "the workspace was filed and removed"
