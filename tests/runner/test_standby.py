"""serve's warm standby (runner/standby.py): a run through a ready standby is the same run as `aias-runbooks run`
(verdict, exit code, report files, lines), on a fresh kernel of its own every time; bad input on its request line is
one line and exit 3 with nothing written; a standby dies with its parent and, until its request comes, holds no
secret of the profile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import psutil
import pytest

from aias_runbooks.runner import headless_kernel
from aias_runbooks.runner.standby_pool import Pool
from aias_runbooks.settings import load_environment

from ..helpers import FIXTURE_NOTEBOOKS, ROOT, Run, runs, wait_for

STANDBY_MODULE = "aias_runbooks.runner.standby"


@pytest.fixture(scope="module")
def pool(sandbox):
    """One pool for the module's runs of the project's own notebooks (each run takes a standby, never reuses one)."""
    standbys = Pool()
    yield standbys
    standbys.close()


def _through(pool: Pool, output: Path, runbook: str, parameters: dict, run_id: str | None = None) -> Run:
    proc = pool.run(runbook, "sandbox", parameters, output=output, run_id=run_id)
    stdout, stderr = proc.communicate(timeout=300)
    return Run(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), output)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_run_through_a_standby_is_the_same_run_as_run(pool, scenario, run, tmp_path):
    """API down: the standby's run pages CRITICAL exactly as `run` does, with the same findings, report files and
    lines, under the run id serve gave it, and leaves no workspace behind."""
    scenario("api-down")
    plain = run("health-check", "-p", "samples=5", "-p", "interval_ms=0")
    ours = _through(pool, tmp_path / "standby", "health-check", {"samples": 5, "interval_ms": 0},
                    run_id="20261207-120000-ab12")
    assert ours.proc.returncode == plain.proc.returncode == 2, ours.proc.stderr
    assert ours.verdict["status"] == plain.verdict["status"] == "CRITICAL"
    assert ours.codes == plain.codes and "API_DOWN" in ours.codes
    assert ours.verdict["run_id"] == "20261207-120000-ab12"
    assert _files(ours.folder) == _files(plain.folder)
    assert [line.split(" | ")[0] for line in ours.proc.stdout.splitlines()][:1] == \
        [line.split(" | ")[0] for line in plain.proc.stdout.splitlines()][:1]
    assert ours.proc.stderr == plain.proc.stderr == ""
    assert not list((ours.output / ".work").iterdir())
    listed = runs(ours.output)
    assert [r["run_id"] for r in listed] == ["20261207-120000-ab12"]


PROBE = """import os
print(json.dumps({"pid": os.getpid(), "names": sorted(n for n in globals() if not n.startswith("_")),
                  "run_id": os.environ.get("AIAS_RUN_ID"), "journal": os.environ.get("AIAS_FINDINGS_JOURNAL"),
                  "new_run_id": os.environ.get("AIAS_NEW_RUN_ID")}))
left_by_this_run = True"""


def _probe_notebooks(folder: Path) -> Path:
    """A runbook whose first cell shows its kernel: pid, the names in its namespace, the run's environment."""
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('environment: str = "sandbox"  # environment profile', metadata={
            "tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import json\n" + PROBE),
        nbformat.v4.new_code_cell('from aias_runbooks import runbook\nrunbook.start("kernel-probe", environment)'
                                  ".verdict()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "kernel-probe.ipynb")
    return folder


def _probed(result: Run) -> dict:
    """What the probe cell printed, and its number in the report ([3] after the parameters and papermill's)."""
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "left_by_this_run" in "".join(c["source"]) and c["cell_type"] == "code"]
    return json.loads("".join(cell["outputs"][0]["text"])) | {"number": cell["execution_count"]}


def test_each_run_gets_a_fresh_kernel_with_its_own_run_in_its_environment(sandbox, run, tmp_path):
    notebooks = _probe_notebooks(tmp_path / "notebooks")
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(notebooks)}
    plain = _probed(run("kernel-probe", env=env))
    standbys = Pool(env=env)
    try:
        runs = [_through(standbys, tmp_path / "out0", "kernel-probe", {})]
        second = standbys.run("kernel-probe", "sandbox", {}, output=tmp_path / "out1")
    finally:
        standbys.close()   # kills the standby in waiting, never a run under way
    stdout, stderr = second.communicate(timeout=300)
    runs.append(Run(subprocess.CompletedProcess(second.args, second.returncode, stdout, stderr), tmp_path / "out1"))
    first, second = (_probed(r) for r in runs)
    assert first["pid"] != second["pid"]
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    for result, probed in zip(runs, (first, second), strict=True):
        assert probed["names"] == plain["names"]   # nothing the warm-up, the hand-over or a run before left
        assert probed["number"] == plain["number"]   # the hand-over is not counted as a cell
        assert "left_by_this_run" not in probed["names"]
        assert probed["run_id"] == result.verdict["run_id"]
        assert probed["journal"] and probed["journal"].endswith(f"/{probed['run_id']}/findings.jsonl")
        assert probed["new_run_id"] is None


def _in_journal(output: Path, code: str) -> bool:
    return any(code in p.read_text(errors="replace") for p in output.glob(".work/*/findings.jsonl"))


def test_sigterm_stops_a_standby_run_and_still_files_its_report(sandbox, tmp_path):
    """As `run` under a scheduler's SIGTERM: the notebook stops, the WARNING recorded before it is the exit code,
    the printed key is redacted, and nothing is left (workspace, the standby's kernel sockets)."""
    output = tmp_path / "output"
    standbys = Pool(env=os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)})
    try:
        proc = standbys.run("stuck-check", "sandbox", {}, output=output)
    finally:
        standbys.close()
    wait_for(lambda: _in_journal(output, "CHECK_BEFORE_HANG") or proc.poll() is not None, 120,
             "the finding recorded before the hang")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    result = Run(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), output)
    assert result.codes == {"CHECK_BEFORE_HANG": "WARNING", "RUNBOOK_ERROR": "UNKNOWN"}
    assert "interrupted" in result.verdict["findings"][-1]["evidence"]["error"]
    assert stderr.splitlines() == ["  warning: 1 secret(s) were found in the report and redacted"]
    assert not list(output.glob(".work/*"))
    assert not list(Path(tempfile.gettempdir()).glob(f"aias-kernel-standby-{proc.pid}-*"))


@pytest.mark.parametrize(("line", "says"), [
    (b"not json\n", "not JSON"),
    (b'["health-check"]\n', "JSON object"),
    (b'{"runbook": "health-check", "secret": 1}\n', "unknown request field 'secret'"),
    (b'{"runbook": "health-check", "parameters": {"samples": 5}}\n', "map names to strings"),
    (b'{"runbook": "health-check", "run_id": "../../etc"}\n', "run id '../../etc' is not one"),
    (b'{"runbook": "--help"}\n', "unknown runbook '--help'; valid: "),
    (b'{"runbook": "health-check", "parameters": {"samples": "0"}}\n', "samples"),
    (b"", "no request came"),
])
def test_bad_input_on_the_request_line_is_one_line_and_exit_3(pool, tmp_path, line, says):
    output = tmp_path / "output"
    proc = pool.take()
    text = line.decode().replace("}\n", f', "output": {json.dumps(str(output))}}}\n') if b"{" in line else \
        line.decode()
    stdout, stderr = proc.communicate(text, timeout=120)
    assert proc.returncode == 3, stderr
    assert stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("aias-runbooks: error: "), stderr
    assert says in stderr
    assert not output.exists()


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    return proc.children(recursive=True)


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_standby_and_its_kernel_die_with_their_parent(sandbox):
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom aias_runbooks.runner.standby_pool import Pool\npool = Pool()\n"
         "print('ready' if pool.wait_ready(120) else 'not ready', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert parent.stdout.readline() == "ready\n"
        held = _descendants(psutil.Process(parent.pid))
        roles = {p.pid: _role(p) for p in held}
        assert set(roles.values()) == {"standby", "kernel"}
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: all(_gone(p) for p in held), 20, "the standby and its kernel to exit")
    finally:
        parent.kill()
    (standby,) = [pid for pid, role in roles.items() if role == "standby"]
    left = list(Path(tempfile.gettempdir()).glob(f"aias-kernel-standby-{standby}-*"))
    assert left, "killed outright, it could not remove its kernel's sockets and connection file"
    Pool().close()   # the next serve's pool removes them
    assert not any(folder.exists() for folder in left)


def _role(proc: psutil.Process) -> str:
    line = " ".join(proc.cmdline())
    return "standby" if STANDBY_MODULE in line else "kernel" if headless_kernel.__name__ in line else line


def test_an_idle_standby_holds_no_secret_of_the_profile(pool):
    """Until its request names the profile, neither the standby nor its warm kernel has read it: no secret in
    their environment, arguments, open files or memory."""
    assert pool.wait_ready(120)
    secrets = [s.reveal() for s in load_environment("sandbox").secrets().values()]
    assert len(secrets) > 5
    me = psutil.Process()
    idle = [p for p in _descendants(me) if _role(p) == "standby"]
    assert len(idle) == 1
    held = idle + _descendants(idle[0])
    assert {_role(p) for p in held} == {"standby", "kernel"}
    for proc in held:
        texts = [json.dumps(proc.environ()), " ".join(proc.cmdline())]
        texts += [Path(f.path).read_text(errors="replace") for f in proc.open_files() if Path(f.path).is_file()]
        found = [s[:6] for s in secrets for t in texts if s in t]
        memory = _memory(proc.pid)
        assert len(memory) > 1_000_000   # read: a process that loaded the profile is caught here
        found += [s[:6] for s in secrets if s.encode() in memory]
        assert not found, f"{_role(proc)} holds secrets starting {found}"


def _memory(pid: int) -> bytes:
    """The process's readable memory."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)
