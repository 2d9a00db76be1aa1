"""Runs that end badly: SIGTERM (once or repeatedly), SIGKILL of the runner, a full disk. Every recorded finding
reaches the verdict, no secret is left on disk, and nothing the run produced is lost."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from aias_runbooks.records import append_jsonl
from aias_runbooks.runner import catalog, execute, workspace

from ..helpers import CLI, FIXTURE_NOTEBOOKS, leaks, wait_for


def _start(output: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "run", *args, "--output", str(output)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or os.environ.copy())


def _fixture_env(**extra: str) -> dict[str, str]:
    return os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)} | extra


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
    records = catalog.read_runs(output)
    assert len(records) == 1 and records[0]["run_id"] == verdict["run_id"]
    assert {p.name for p in output.glob("[0-9]*/*/*")} == {"notebook.ipynb", "report.html", "verdict.json"}
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
    records = {r["run_id"]: r for r in catalog.read_runs(output)}
    assert set(records) == {run_id, after.verdict["run_id"]}
    orphan = records[run_id]
    assert orphan["status"] == "WARNING" and "runner stopped" in orphan["error"]
    filed = json.loads((output / orphan["report_dir"] / "verdict.json").read_text())
    assert _codes(filed) == {"CHECK_BEFORE_HANG": "WARNING", "RUNBOOK_ERROR": "UNKNOWN"}
    assert canary not in (output / orphan["report_dir"] / "notebook.ipynb").read_text()
    assert not list(output.glob(".work/*"))
    assert not list(Path(tempfile.gettempdir()).glob(f"aias-kernel-{run_id}-*")), "its kernel's sockets removed"


@pytest.fixture
def tmpfs():
    """Mount a real filesystem of a given size (a tmpfs: root only) at a folder; unmounted afterwards. Where it
    cannot be mounted the test is skipped, except on CI (which runs as root), where that is a failure."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            problem = f"cannot mount a {size} tmpfs (it needs root): {done.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(f"{problem}; CI runs as root, and a full disk must be made for real there")
            pytest.skip(problem)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path, tmpfs):
    """A 200 KB filesystem: enough for the run's workspace, not for its report."""
    return tmpfs(tmp_path / "small-disk", "200k")


def _fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last block, as a runaway log would; the file, to free it again."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError, match="No space left on device"):
        while fh.write(b"\0" * 4096):
            pass
    return filler


def _catalogue(output: Path) -> list[dict]:
    return catalog.read_runs(output)


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
    records = _catalogue(output)
    assert [r["run_id"] for r in records][0] == workspace.name, "the stranded run is filed first"
    assert all(r["status"] == "OK" for r in records), "it had finished; only filing its report failed"
    assert len(list(output.glob("*/*/report.html"))) == 2 and not list(output.glob(".work/*"))


def test_a_disk_filling_mid_run_is_one_line_exit_3_and_the_run_filed_once(sandbox, tmp_path, tmpfs):
    """The disk fills while the notebook runs (disk-filling-check holds the space until its kernel exits), so its
    saves fail with ENOSPC: one stderr line naming the disk problem and the folder, exit 3, the report filed
    once, complete, saying so; the next run does not file it again."""
    output = tmpfs(tmp_path / "disk", "20m") / "output"
    full = subprocess.run([*CLI, "run", "disk-filling-check", "--output", str(output)], capture_output=True,
                          text=True, timeout=300, env=_fixture_env())
    assert full.returncode == 3, full.stdout + full.stderr
    (line,) = full.stderr.splitlines()
    assert line.startswith("aias-runbooks: error: ") and "No space left on device" in line and str(output) in line
    (record,) = _catalogue(output)
    folder = output / record["report_dir"]
    assert sorted(p.name for p in folder.iterdir()) == ["notebook.ipynb", "report.html", "verdict.json"]
    verdict = json.loads((folder / "verdict.json").read_text())
    assert _codes(verdict) == {"CHECK_BEFORE_FULL": "OK", "RUNBOOK_ERROR": "UNKNOWN"}
    error = next(f for f in verdict["findings"] if f["code"] == "RUNBOOK_ERROR")["evidence"]["error"]
    assert "could not be saved" in error and "No space left on device" in error
    assert "never saved" not in (folder / "notebook.ipynb").read_text(), "the notebook as last saved"
    assert not list(output.glob(".work/*"))

    after = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output)],
                           capture_output=True, text=True, timeout=300)
    assert (after.returncode, after.stderr) == (0, ""), after.stdout + after.stderr
    assert [r["run_id"] for r in _catalogue(output)][0] == record["run_id"] and len(_catalogue(output)) == 2
    assert len(list(output.glob("*/*/verdict.json"))) == 2


def test_a_disk_full_after_the_record_files_the_run_once(sandbox, tmp_path, tmpfs):
    """The run's record is written, then the closing day's page cannot be (its disk is full): the run is filed,
    and said in one stderr line naming the folder; the next run pages the day, and never files the run again."""
    output = tmp_path / "output"
    old = {"run_id": "20261120-120000-0abc", "runbook": "health-check", "env": "sandbox", "status": "OK",
           "started_at": "2026-11-20T12:00:00+00:00", "summary": "OK: an old run", "report_dir": "2026-11-20/x"}
    record_file = output / catalog.record_path(old)   # filed by an older version: its day not closed yet
    record_file.parent.mkdir(parents=True)
    record_file.write_text(json.dumps(old))
    filler = _fill(tmpfs(output / "archive", "64k"))
    first = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output)],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, "the run is filed: its exit code is its verdict's\n" + first.stdout + first.stderr
    assert "report: " in first.stdout
    (line,) = first.stderr.splitlines()
    assert "No space left on device" in line and str(output) in line, line
    old_again, record = _catalogue(output)
    assert old_again["run_id"] == old["run_id"]
    assert not list(output.glob(".work/*")), "filed: nothing is left for the next run to file again"

    filler.unlink()
    again = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output)],
                           capture_output=True, text=True, timeout=300)
    assert (again.returncode, again.stderr) == (0, ""), again.stdout + again.stderr
    runs = _catalogue(output)
    assert len(runs) == 3 and runs[1]["run_id"] == record["run_id"] != runs[2]["run_id"]
    assert len(list(output.glob("*/*/verdict.json"))) == 2, "one report folder per run"
    assert all(f'{r["report_dir"]}/report.html' in (output / "index.html").read_text() for r in runs)
    assert "2026-11-20/x/report.html" in (output / "archive" / "2026-11-20.html").read_text(), "the day is paged"


def test_a_line_that_cannot_be_appended_whole_leaves_no_torn_line(tmp_path, tmpfs):
    """runs.jsonl on a full disk: the append fails (ENOSPC) and the file is as it was, so the next line appended
    once there is room is a line of its own, not glued onto half of this one."""
    disk = tmpfs(tmp_path / "disk", "64k")
    path = disk / "runs.jsonl"
    before = json.dumps({"run_id": "earlier", "pad": "x" * 4000}) + "\n"   # the next line needs a new block
    path.write_text(before)
    filler = _fill(disk)
    with pytest.raises(OSError, match="No space left on device"):
        append_jsonl(path, {"run_id": "cut", "summary": "y" * 300})
    assert path.read_text() == before
    filler.unlink()
    append_jsonl(path, {"run_id": "next"})
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == ["earlier", "next"]


@pytest.mark.parametrize("cut", ["after the append", "before the move"])
def test_a_filing_cut_short_is_completed_once_by_the_next_run(tmp_path, cut):
    """A runner killed while filing (its record kept in the workspace) leaves a filing the next run completes:
    moved into the archive if it was still staged, listed once by run id whether or not its line was appended."""
    root = tmp_path / "output"
    record = {"run_id": "20261126-200000-abcd", "runbook": "health-check", "env": "sandbox", "incident": None,
              "status": "OK", "exit_code": 0, "summary": "OK: filed once", "top_finding": None,
              "started_at": "2026-11-26T20:00:00+00:00", "report_dir": "2026-11-26/200000_health-check_sandbox"}
    space = workspace.create(root, record["run_id"], {"run_id": record["run_id"], "runbook": "health-check",
                                                       "env": "sandbox", "incident": None, "operator": None,
                                                       "started_at": record["started_at"], "parameters": {},
                                                       "input": str(Path("notebooks/health-check.ipynb").resolve())})
    report = space.path / "report" if cut == "before the move" else root / record["report_dir"]
    report.mkdir(parents=True)
    (report / "verdict.json").write_text(json.dumps({"status": "OK"}))
    (root / record["report_dir"]).mkdir(parents=True, exist_ok=True)   # make_run_dir made it, empty
    space.filing.write_text(json.dumps(record))
    if cut == "after the append":
        catalog.file_run(root, record)
    space.release()   # the runner is gone: its lock is free

    execute.finish_orphans(root)
    assert [r["run_id"] for r in catalog.read_runs(root)] == [record["run_id"]], "listed once"
    assert [p.parent.name for p in root.glob("*/*/verdict.json")] == ["200000_health-check_sandbox"]
    assert not list(root.glob(".work/*"))
    assert f'{record["report_dir"]}/report.html' in (root / "index.html").read_text()


def test_a_workspace_being_made_is_never_filed_as_an_orphan(tmp_path):
    """A run starting files the orphans it finds; a run beside it (run-due's entries, serve's runs) may be between
    making its folder and locking it. A CI run lost a run that way ("cannot write reports under ...: resource
    temporarily unavailable"): the folder, not yet locked nor described, was taken for a dead run and removed."""
    root = tmp_path / "output"
    making = root / workspace.WORK / ".20261207-120000-ab12.new"   # as create() leaves it before its lock
    making.mkdir(parents=True)
    (making / "run.lock").touch()
    execute.finish_orphans(root)
    assert making.is_dir(), "a folder still being made was removed"
    space = workspace.create(root, "20261207-120001-cd34", {"run_id": "20261207-120001-cd34"})
    assert space.path == root / workspace.WORK / "20261207-120001-cd34" and space.meta()["run_id"]
    assert not list(root.glob(f"{workspace.WORK}/.20261207-120001-cd34.new")), "made in one step: renamed"
    execute.finish_orphans(root)
    assert space.path.is_dir(), "a live run's locked folder is never an orphan"
    old = time.time() - workspace.STALE_NEW_S - 60
    os.utime(making, (old, old))
    execute.finish_orphans(root)
    assert not making.exists(), "one a killed runner left over an hour ago is cleaned up"
