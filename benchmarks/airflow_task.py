"""A scheduled runbook as an Airflow task against the same `aias-runbooks run` from cron (issue 22: at most 1.2x).

A real Airflow from .venv-airflow (`make airflow`): `airflow standalone` (scheduler, DAG processor, API server,
LocalExecutor workers; a metadata database on SQLite in a temporary AIRFLOW_HOME) with the ready DAG file and one
entry, health-check -p samples=20 on the running sandbox. Each of RUNS pairs triggers a DAG run and waits for it, then
runs the same `aias-runbooks run ... --entry` as cron would:
- the task's duration as Airflow records it (start to end: the worker's task process, which parses the DAG file
  again, runs the CLI and files the state), and from queued to end (the executor's pick-up added);
- cron's whole process; the ratios pair by pair, their median against the target.
A first run, untimed, warms Airflow's workers and the page cache. Airflow's daemons stay up during the cron runs too.
Usage: .venv/bin/python benchmarks/airflow_task.py [RUNS]   (the sandbox up: `aias-runbooks sandbox up`)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = ROOT / ".venv-airflow" / "bin"
CLI = ROOT / ".venv" / "bin" / "aias-runbooks"
ENTRY = "bench-health"
DAG = f"aias_{ENTRY}"
TARGET = 1.2
BOUND_S = 240
SCHEDULES = (f"schedules:\n  - name: {ENTRY}\n    cron: '0 0 1 1 *'\n    runbook: health-check\n"
             "    environment: sandbox\n    parameters: {samples: 20}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _airflow(env: dict, *args: str) -> None:
    done = subprocess.run([AIRFLOW_BIN / "airflow", *args], capture_output=True, text=True, env=env, timeout=BOUND_S)
    if done.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def _query(home: Path, sql: str, *params: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db", timeout=30) as db:
        return db.execute(sql, params).fetchall()


def _wait(what: str, condition) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {BOUND_S} s waiting for {what}")
        time.sleep(0.2)


def _task(home: Path, run_id: str) -> tuple | None:
    """(state, duration, seconds from queued to end) of the run's task, once it has ended; else None."""
    rows = _query(home, "SELECT state, duration, queued_dttm, end_date FROM task_instance WHERE dag_id = ? "
                  "AND run_id = ? AND state IN ('success', 'failed')", DAG, run_id)
    if not rows:
        return None
    state, duration, queued, end = rows[0]
    return state, float(duration), (datetime.fromisoformat(end) - datetime.fromisoformat(queued)).total_seconds()


def _run(env: dict, home: Path, run_id: str) -> tuple:
    """Trigger a DAG run and wait for its task to end."""
    _airflow(env, "dags", "trigger", DAG, "--run-id", run_id)
    _wait(f"DAG run {run_id}", lambda: _task(home, run_id) is not None)
    return _task(home, run_id)


def _started(home: Path) -> bool:
    try:
        return bool(_query(home, "SELECT 1 FROM dag WHERE dag_id = ?", DAG))
    except sqlite3.Error:
        return False


def _stop(daemons: subprocess.Popen) -> None:
    """SIGTERM to standalone's process group (its scheduler, DAG processor, API server and workers), and wait until
    every one is gone (they drain for a few seconds); SIGKILL what is left after 90 s."""
    os.killpg(daemons.pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        daemons.poll()
        try:
            os.killpg(daemons.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(daemons.pid, signal.SIGKILL)


def measure(runs: int, output: Path) -> list[tuple[str, float, str, float | None]]:
    """(measure, median, unit, target) rows."""
    if not (AIRFLOW_BIN / "airflow").exists():
        raise SystemExit(f"no Airflow in {AIRFLOW_BIN.parent}: `make .venv-airflow/.installed` first")
    home = Path(tempfile.mkdtemp(prefix="aias-bench-airflow-"))
    (home / "dags").mkdir()
    shutil.copy(ROOT / "dags" / "aias_schedules.py", home / "dags")
    (home / "schedules.yaml").write_text(SCHEDULES)
    port = _free_port()
    env = os.environ | {"PATH": f"{AIRFLOW_BIN}:{os.environ['PATH']}", "AIRFLOW_HOME": str(home),
                        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                        "AIRFLOW__API__PORT": str(port), "AIAS_HOME": str(ROOT),
                        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
                        "AIAS_SCHEDULES_FILE": str(home / "schedules.yaml"), "AIAS_OUTPUT_DIR": str(output)}
    cron = [CLI, "run", "health-check", "--env", "sandbox", "-p", "samples=20", "--entry", ENTRY, "--output", output]
    daemons = subprocess.Popen([AIRFLOW_BIN / "airflow", "standalone"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait("Airflow's DAG processor to load the DAG", lambda: _started(home))
        _airflow(env, "dags", "unpause", DAG)   # a yearly slot: beside the runs triggered here, the past one only
        _run(env, home, "warm-up")
        subprocess.run(cron, capture_output=True, env=env, check=False)
        pairs = []
        for i in range(runs):
            task = _run(env, home, f"bench-{i}")
            start = time.perf_counter()
            subprocess.run(cron, capture_output=True, env=env, check=False)
            pairs.append((time.perf_counter() - start, task))
    finally:
        _stop(daemons)
        shutil.rmtree(home, ignore_errors=True)
    states = {p[1][0] for p in pairs}
    if states != {"success"}:
        raise SystemExit(f"Airflow's runs ended {states}, not all success")
    cron_s, task_s, queued_s = ([p[0] for p in pairs], [p[1][1] for p in pairs], [p[1][2] for p in pairs])
    return [("cron: `aias-runbooks run health-check -p samples=20`, whole process", statistics.median(cron_s), "s",
             None),
            ("Airflow: the task's duration (worker start to end; DAG file parsed again)", statistics.median(task_s),
             "s", None),
            ("Airflow: the task from queued to end (the executor's pick-up added)", statistics.median(queued_s), "s",
             None),
            ("Airflow task / cron (median of the pairs' ratios)",
             statistics.median(task[1] / wall for wall, task in pairs), "x", TARGET),
            ("Airflow task from queued / cron (median of the pairs' ratios)",
             statistics.median(task[2] / wall for wall, task in pairs), "x", None)]


def main() -> None:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), 5))
    output = Path(tempfile.mkdtemp(prefix="aias-bench-"))
    for what, value, unit, target in measure(runs, output):
        met = "" if target is None else ("yes" if value <= target else "NO")
        print(f"{what:<80} {value:8.3f} {unit:<2} {'' if target is None else f'<= {target}':<7} {met}")


if __name__ == "__main__":
    main()
