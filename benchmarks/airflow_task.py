"""A scheduled runbook as an Airflow task against the same `aias-runbooks run` from cron (issue 22: at most 1.2x).

The checkout's params/schedules.yaml, its entry health-5min (health-check -p samples=20), on the running sandbox:
- cron: `aias-runbooks run health-check --env sandbox -p samples=20 --entry health-5min`, the whole process;
- Airflow: `airflow dags test aias_health-5min` in .venv-airflow (`make airflow`; a metadata database on SQLite in a
  temporary AIRFLOW_HOME, no scheduler), alternating with cron, RUNS pairs. A worker pays, per task, the DAG file's
  parse (Airflow's own measure: `airflow dags report`) and the task itself, from its start in the task log (our
  operator's first line, once Airflow's execution API let it run) to its final state written: the task cost is their
  sum, and the ratio is taken pair by pair. `dags test`'s whole process is shown too: it also starts Airflow, writes
  every DAG to the database and boots an in-process execution API for each task, which a deployment's long-running
  scheduler, API server and workers do not repeat per task.
Usage: .venv/bin/python benchmarks/airflow_task.py [RUNS]   (the sandbox up: `aias-runbooks sandbox up`)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
CLI = ROOT / ".venv" / "bin" / "aias-runbooks"
ENTRY, DAG = "health-5min", "aias_health-5min"
TARGET = 1.2
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def _stamp(line: str) -> datetime:
    found = STAMP.match(line)
    if not found:
        raise SystemExit(f"no timestamp on Airflow's log line {line[:120]!r}")
    return datetime.fromisoformat(found.group(1))


def task_seconds(log: str) -> float:
    """From the task's first line (the operator starts the run) to its final state written, in the task log."""
    lines = log.splitlines()
    start = next(line for line in lines if "aias-runbooks run " in line and "(run id " in line)
    end = next(line for line in reversed(lines) if "Task instance state updated" in line and "new_state=" in line)
    return (_stamp(end) - _stamp(start)).total_seconds()


def _timed(argv: list, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed, done.stdout + done.stderr


def _parse_seconds(env: dict) -> float:
    """The DAG file's parse as Airflow measures it (`airflow dags report`): what a worker repeats per task."""
    _, said = _timed([AIRFLOW, "dags", "report", "-o", "json"], env)
    (report,) = json.loads([line for line in said.splitlines() if line.startswith("[")][-1])
    h, m, s = report["duration"].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def measure(runs: int, output: Path) -> list[tuple[str, float, str, float | None]]:
    """(measure, median, unit, target) rows."""
    if not AIRFLOW.exists():
        raise SystemExit(f"no Airflow at {AIRFLOW}: `make .venv-airflow/.installed` first")
    home = Path(tempfile.mkdtemp(prefix="aias-bench-airflow-"))
    (home / "dags").mkdir()
    shutil.copy(ROOT / "dags" / "aias_schedules.py", home / "dags")
    env = os.environ | {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIAS_HOME": str(ROOT),
                        "AIAS_OUTPUT_DIR": str(output)}
    _timed([AIRFLOW, "db", "migrate"], env)
    cron = [CLI, "run", "health-check", "--env", "sandbox", "-p", "samples=20", "--entry", ENTRY, "--output", output]
    airflow = [AIRFLOW, "dags", "test", DAG]
    _timed(cron, env), _timed(airflow, env)    # warm the page cache for both
    pairs = []
    for _ in range(runs):
        whole, log = _timed(airflow, env)
        wall, _ = _timed(cron, env)
        pairs.append((whole, task_seconds(log), wall))
    parse = statistics.median(_parse_seconds(env) for _ in range(runs))
    shutil.rmtree(home, ignore_errors=True)
    med = lambda i: statistics.median(p[i] for p in pairs)  # noqa: E731
    return [("cron: `aias-runbooks run health-check -p samples=20`, whole process", med(2), "s", None),
            ("Airflow: the DAG file's parse, per task (airflow dags report; 7 entries)", parse, "s", None),
            ("Airflow: the task, from its start to its state written", med(1), "s", None),
            ("Airflow task (parse + task) / cron (median of the pairs' ratios)",
             statistics.median((p[1] + parse) / p[2] for p in pairs), "x", TARGET),
            ("`airflow dags test`, whole process (Airflow's start, DAG sync, in-process API)", med(0), "s", None),
            ("`airflow dags test` / cron (median of the pairs' ratios)",
             statistics.median(p[0] / p[2] for p in pairs), "x", None)]


def main() -> None:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), 5))
    output = Path(tempfile.mkdtemp(prefix="aias-bench-"))
    for what, value, unit, target in measure(runs, output):
        met = "" if target is None else ("yes" if value <= target else "NO")
        print(f"{what:<90} {value:8.3f} {unit:<2} {'' if target is None else f'<= {target}':<7} {met}")


if __name__ == "__main__":
    main()
