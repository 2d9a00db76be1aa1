"""Airflow DAGs from params/schedules.yaml: one DAG per entry, its one task the CLI's `aias-runbooks run`.

Airflow runs in an interpreter of its own (its constraints pin SQLAlchemy, pandas and more apart from ours: `make
airflow` builds .venv-airflow), so this module imports nothing of the project and, until DAGs are built, nothing
outside the standard library. It reaches the project through the checkout's CLI, AIAS_HOME/.venv/bin/aias-runbooks:
- the entries come from `aias-runbooks schedule check --json`, the validation run-due uses; a bad file raises
  SchedulesError naming the entry, so the DAG file defines no DAG at all: never half a DAG folder;
- a task runs `aias-runbooks run ... --entry NAME` (not PapermillOperator, which would bypass the input checks, the
  secret-free injection, the redaction scan, the verdict and the exit codes): airflow_task.RunbookOperator;
- a change of status is told by `aias-runbooks schedule notify NAME --run-id RUN` from the task's callbacks, which
  reads the previous status from the shared catalogue: two workers never both page for one change.

dags/aias_schedules.py is the file a user drops into Airflow's DAGs folder; dag_file_text() returns it (`schedule
export --format airflow` writes it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HOME_VAR = "AIAS_HOME"                       # the aias-runbooks checkout (paths.project_root's override too)
SCHEDULES_VAR = "AIAS_SCHEDULES_FILE"        # another schedules file than the checkout's params/schedules.yaml
TIMEOUT_VAR = "AIAS_AIRFLOW_TASK_TIMEOUT"    # seconds a run may take before Airflow stops it (default: no bound)
RETRY_DELAY_VAR = "AIAS_AIRFLOW_RETRY_DELAY"  # seconds before an UNKNOWN run (exit 3) is tried again
RETRY_DELAY_S = 60
CHECK_TIMEOUT_S = 120   # `schedule check` loads every entry's notebook and profile: well under a second each
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)   # fixed, in the past; catchup=False runs no old slot
DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "aias_schedules.py"


class SchedulesError(Exception):
    """The schedules file (or the checkout) cannot give DAGs: one line naming what is wrong and what is valid."""


def dag_file_text() -> str:
    """The ready DAG file (dags/aias_schedules.py) as text, for `aias-runbooks schedule export --format airflow`."""
    return DAG_FILE.read_text(encoding="utf-8")


def dag_id(name: str) -> str:
    """The DAG id of a schedule entry: aias_<name>, any character Airflow refuses in an id made '_' (entry names
    are letters, digits, '.', '_' and '-', all allowed, so in practice the name as it is)."""
    return "aias_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def cli(home: str | Path) -> Path:
    """The checkout's aias-runbooks CLI; SchedulesError when the checkout has none."""
    path = Path(home) / ".venv" / "bin" / "aias-runbooks"
    if not os.access(path, os.X_OK):
        raise SchedulesError(f"{HOME_VAR}={home} has no {path.relative_to(home)}: set {HOME_VAR} to the aias-runbooks "
                             "checkout and install it there (`make .venv/.installed`)")
    return path


def entries(home: str | Path, schedules: str | Path | None = None) -> list[dict[str, Any]]:
    """The checked entries of the schedules file, as `aias-runbooks schedule check --json` gives them (the checks
    run-due makes); SchedulesError with the CLI's one line, naming the entry, when the file is bad."""
    args = [str(cli(home)), "schedule", "check", "--json"] + (["--schedules", str(schedules)] if schedules else [])
    try:
        done = subprocess.run(args, cwd=home, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SchedulesError(f"`aias-runbooks schedule check` gave no answer in {CHECK_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode} and nothing said"]
        raise SchedulesError(f"aias-runbooks schedule check: {lines[-1].removeprefix('aias-runbooks: error: ')}")
    return json.loads(done.stdout)["schedules"]


def argv(entry: dict[str, Any]) -> list[str]:
    """The `aias-runbooks` arguments that run the entry, as run-due runs it (with --entry, so its record names the
    entry): the entry's own `argv` when `schedule check` gives it, else made from its fields the way run_all's
    command() writes values (booleans true/false, floats by repr)."""
    if entry.get("argv"):
        return [str(a) for a in entry["argv"]]
    args = ["run", entry["runbook"], "--env", entry["environment"]]
    for name, value in (entry.get("parameters") or {}).items():
        text = ("true" if value else "false") if isinstance(value, bool) else repr(value) \
            if isinstance(value, float) else str(value)
        args += ["-p", f"{name}={text}"]
    for key in ("incident", "archive"):
        if entry.get(key):
            args += [f"--{key}", str(entry[key])]
    return [*args, "--entry", entry["name"]]


def _seconds(var: str, default: float | None) -> timedelta | None:
    text = os.environ.get(var, "").strip()
    if not text:
        return None if default is None else timedelta(seconds=default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 7 * 86400:
        raise SchedulesError(f"{var}={text!r} is not a number of seconds; valid: more than 0, at most 604800")
    return timedelta(seconds=value)


def build_dags(home: str | Path, schedules: str | Path | None = None) -> dict[str, Any]:
    """{dag_id: DAG} for every entry of the schedules file (AIAS_SCHEDULES_FILE, else the checkout's), each
    scheduled by its cron (UTC), catchup=False, max_active_runs=1, tagged with its runbook and environment, its task
    a RunbookOperator. All or none: SchedulesError (naming the entry) before any DAG is made."""
    schedules = schedules or os.environ.get(SCHEDULES_VAR) or None
    timeout, retry_delay = _seconds(TIMEOUT_VAR, None), _seconds(RETRY_DELAY_VAR, RETRY_DELAY_S)
    checked = entries(home, schedules)   # all checked before Airflow is even imported

    from airflow.sdk import DAG
    from airflow.timetables.trigger import CronTriggerTimetable

    from .airflow_task import RunbookOperator
    dags: dict[str, Any] = {}
    for entry in checked:
        with DAG(dag_id(entry["name"]), schedule=CronTriggerTimetable(entry["cron"], timezone="UTC"),
                 start_date=START_DATE, catchup=False, max_active_runs=1,
                 tags=[entry["runbook"], entry["environment"]],
                 description=f"{entry['runbook']} on {entry['environment']} at '{entry['cron']}' (UTC): schedule "
                             f"entry {entry['name']}") as dag:
            RunbookOperator(task_id=entry["runbook"], cli=str(cli(home)), home=str(home), entry=entry["name"],
                            argv=argv(entry), schedules=str(schedules) if schedules else None,
                            notify=bool(entry.get("notify")), execution_timeout=timeout, retries=1,
                            retry_delay=retry_delay)
        dags[dag.dag_id] = dag
    return dags
