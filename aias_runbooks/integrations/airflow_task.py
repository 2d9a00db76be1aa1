"""RunbookOperator: one scheduled run as an Airflow task, `aias-runbooks run ... --entry NAME` in a subprocess.

Imported in Airflow's interpreter only (airflow.py's build_dags). The run's exit code is the task's state:

| exit | run's verdict | task |
|---|---|---|
| 0 | OK | success |
| 1 | WARNING | success, the verdict line logged as a warning |
| 2 | CRITICAL | failed, never retried (AirflowFailException); the entry's notify: channels told |
| 3 | UNKNOWN: could not judge | failed and retried once after retry_delay: the only outcome a retry can change |

Every outcome's verdict line, report location, run id and exit code are in the task log and in XCom (return_value).
A run stopped by Airflow (execution_timeout, or the task marked failed: on_kill) gets SIGTERM and is waited for, so
it files its partial report as `run` does on SIGTERM; the task then fails without a retry. The run is started in a
session of its own: Airflow's SIGKILL of the task process, five seconds after its SIGTERM, does not reach it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout
from airflow.sdk import BaseOperator

NEW_RUN_ID = "AIAS_NEW_RUN_ID"   # the run id `run` takes from its caller (runner/execute.py, given_run_id)
STATUSES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
NOTIFY_TIMEOUT_S = 120


def new_run_id() -> str:
    """A run id as `run` makes them (YYYYmmdd-HHMMSS-xxxx, UTC): chosen here so the callbacks know the run."""
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def outcome(lines: list[str], exit_code: int, run_id: str) -> dict[str, Any]:
    """What the run said, as XCom carries it: its verdict line (the first line naming a status: the summary, or
    the one-line error of a refused run), where its report is, its run id, status and exit code."""
    said = [line.strip() for line in lines if line.strip()]
    verdict = next((line for line in said if line.split(":")[0] in STATUSES.values()), None)
    error = next((line for line in said if line.startswith("aias-runbooks: error:")), None)
    report = next((line.split(":", 1)[1].strip() for line in said if line.startswith("report:")), None)
    return {"verdict": verdict or error or (said[0] if said else ""), "report": report, "run_id": run_id,
            "status": STATUSES.get(exit_code, "UNKNOWN"), "exit_code": exit_code}


class RunbookOperator(BaseOperator):
    """Run one schedule entry with the checkout's CLI; its exit code decides the task's state (module docstring)."""

    template_fields = ()   # parameters are the runbook's, never Jinja
    ui_color = "#e8f0fe"

    def __init__(self, *, cli: str, home: str, entry: str, argv: list[str], schedules: str | None = None,
                 notify: bool = False, **kwargs: Any) -> None:
        if notify:
            kwargs.setdefault("on_success_callback", tell_change)
            kwargs.setdefault("on_failure_callback", tell_change)
        super().__init__(**kwargs)
        self.cli, self.home, self.entry, self.argv, self.schedules = cli, home, entry, argv, schedules
        self.aias_run_id: str | None = None
        self._proc: subprocess.Popen | None = None
        self._stopped = False

    def execute(self, context: Any) -> dict[str, Any]:
        run_id = self.aias_run_id = new_run_id()
        self.log.info("aias-runbooks %s (run id %s)", " ".join(self.argv), run_id)
        proc = self._proc = subprocess.Popen(
            [self.cli, *self.argv], cwd=self.home, env=os.environ | {NEW_RUN_ID: run_id}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        lines: list[str] = []
        try:
            self._stream(proc, lines)
        except AirflowTaskTimeout:
            self.log.error("execution_timeout (%s) reached: SIGTERM to the run, waiting for its partial report",
                           self.execution_timeout)
            self._stopped = True
            proc.send_signal(signal.SIGTERM)
            self._stream(proc, lines)
        result = outcome(lines, proc.returncode, run_id)
        where = f"report: {result['report'] or 'none filed'}"
        if self._stopped or result["exit_code"] not in (0, 1):   # a failed task's outcome is in XCom too
            context["ti"].xcom_push(key="return_value", value=result)
        if self._stopped:
            raise AirflowFailException(f"stopped by Airflow; the run filed what it had: {result['verdict']} ({where})")
        if result["exit_code"] in (0, 1):
            (self.log.warning if result["exit_code"] == 1 else self.log.info)("%s (%s)", result["verdict"], where)
            return result
        if result["exit_code"] == 3:
            raise AirflowException(f"could not judge (exit 3: retried once): {result['verdict']} ({where})")
        raise AirflowFailException(f"{result['verdict']} ({where})" if result["exit_code"] == 2 else
                                   f"aias-runbooks exited {result['exit_code']}: {result['verdict']} ({where})")

    def _stream(self, proc: subprocess.Popen, lines: list[str]) -> None:
        """Every line the run prints into the task log as it comes, until it exits."""
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            self.log.info("%s", line.rstrip("\n"))
        proc.wait()

    def on_kill(self) -> None:
        """Airflow stops the task (marked failed, or its SIGTERM): SIGTERM to the run, which files its partial
        report; execute() goes on reading it to the end and then fails the task."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._stopped = True
            self.log.warning("stopped by Airflow: SIGTERM to the run (pid %s), which files its partial report",
                             proc.pid)
            proc.send_signal(signal.SIGTERM)


def tell_change(context: Any) -> None:
    """The task's success and failure callback: `aias-runbooks schedule notify NAME --run-id RUN` tells the entry's
    notify: channels of a change of status, judged against the shared catalogue (no change, nothing told). Its
    lines go to the task log; a failure to tell is logged, never a changed task state."""
    task = context["task"]
    if not isinstance(task, RunbookOperator) or not task.aias_run_id:
        return
    args = [task.cli, "schedule", "notify", task.entry, "--run-id", task.aias_run_id]
    args += ["--schedules", task.schedules] if task.schedules else []
    log: Callable[..., None] = task.log.info
    try:
        done = subprocess.run(args, cwd=task.home, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, timeout=NOTIFY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        task.log.error("aias-runbooks schedule notify %s gave no answer in %s s", task.entry, NOTIFY_TIMEOUT_S)
        return
    if done.returncode != 0:
        log = task.log.error
    for line in (done.stdout + done.stderr).splitlines():
        log("notify: %s", line)
