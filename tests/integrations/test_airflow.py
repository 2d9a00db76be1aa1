"""Scheduled runbooks on Airflow: the ready dags/aias_schedules.py dropped into a DAGs folder of a real Airflow 3
(.venv-airflow, which `make test` builds), its metadata database on SQLite in a temporary AIRFLOW_HOME, no scheduler:
`airflow dags test` of the generated DAGs against the session's sandbox. Asserted is what an on-call engineer sees:
the task's state and tries, the report filed, the verdict line in the task log and in XCom, the notify: channel told;
a bad schedules file is an import error naming the entry, and no DAG of that file loads.

Without .venv-airflow these tests skip on a workstation and fail in CI (CI set), as test_pooler.py does for PgBouncer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from aias_runbooks.runner.store import open_archive

from ..helpers import FIXTURE_NOTEBOOKS, ROOT, monitor_dsn, runs, wait_for

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
DAG_FILE = ROOT / "dags" / "aias_schedules.py"
BOUND_S = 300   # one `airflow dags test`: Airflow's start (a few seconds), the run, a retry


def _airflow_env(home: Path) -> dict[str, str]:
    return os.environ | {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                         "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "AIAS_HOME": str(ROOT)}


@pytest.fixture(scope="module")
def metadata_db(tmp_path_factory) -> Path:
    """An Airflow metadata database, migrated once for the module; each test works on a copy."""
    if not AIRFLOW.exists():
        message = f"Airflow is not installed at {AIRFLOW}: `make .venv-airflow/.installed` (make test builds it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this fails rather than skips")
        pytest.skip(message)
    home = tmp_path_factory.mktemp("airflow-template")
    done = subprocess.run([str(AIRFLOW), "db", "migrate"], env=_airflow_env(home), capture_output=True, text=True,
                          timeout=BOUND_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home / "airflow.db"


@dataclass
class Airflow:
    """One test's Airflow: its home (a copy of the migrated database), a DAGs folder holding the ready DAG file
    as a user drops it there, a schedules file and a report root of its own."""
    home: Path
    output: Path

    @property
    def schedules(self) -> Path:
        return self.home / "schedules.yaml"

    def env(self, **extra: str) -> dict[str, str]:
        return _airflow_env(self.home) | {"AIAS_SCHEDULES_FILE": str(self.schedules),
                                          "AIAS_OUTPUT_DIR": str(self.output), "AIAS_AIRFLOW_RETRY_DELAY": "1"} | extra

    def entry(self, name: str, runbook: str, parameters: str = "{}", notify: str | None = None,
              archive: str | None = None) -> str:
        """Write a schedules file of one entry (every 5 minutes, on the sandbox); its DAG id."""
        self.schedules.write_text(f"schedules:\n  - name: {name}\n    cron: '*/5 * * * *'\n    runbook: {runbook}\n"
                                  f"    environment: sandbox\n    parameters: {parameters}\n"
                                  + (f"    notify: {notify}\n" if notify else "")
                                  + (f"    archive: {archive}\n" if archive else ""))
        return f"aias_{name}"

    def airflow(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(AIRFLOW), *args], env=self.env(**env), capture_output=True, text=True,
                              timeout=BOUND_S, cwd=self.home)

    def dags_test(self, dag_id: str, **env: str) -> subprocess.CompletedProcess:
        """`airflow dags test DAG_ID`: one DAG run, its task run in this process, retries included."""
        return self.airflow("dags", "test", dag_id, **env)

    def query(self, sql: str, *params: str) -> list[tuple]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, params).fetchall()

    def tries(self, dag_id: str) -> list[tuple[int, str]]:
        """The task's tries of the latest DAG run, oldest first, as the UI's task history shows them."""
        (run_id,) = self.query("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag_id)[0]
        sql = "SELECT try_number, state FROM {} WHERE dag_id = ? AND run_id = ?"
        return sorted(self.query(sql.format("task_instance_history"), dag_id, run_id)
                      + self.query(sql.format("task_instance"), dag_id, run_id))

    def xcom(self, dag_id: str) -> dict:
        """The task's return_value XCom of the latest DAG run: the run's verdict line, report, run id, status."""
        (value,) = self.query("SELECT value FROM xcom WHERE dag_id = ? AND key = 'return_value' "
                              "ORDER BY timestamp DESC LIMIT 1", dag_id)[0]
        return json.loads(value)


@pytest.fixture
def airflow(metadata_db, sandbox, tmp_path) -> Airflow:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    shutil.copy(metadata_db, home / "airflow.db")
    shutil.copy(DAG_FILE, home / "dags" / DAG_FILE.name)
    return Airflow(home, tmp_path / "output")


def _said(done: subprocess.CompletedProcess) -> str:
    return (done.stdout + done.stderr)[-6000:]


def _json(done: subprocess.CompletedProcess) -> list:
    """The JSON a `-o json` command printed (its last line; Airflow's warnings may come before it)."""
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert lines, _said(done)
    return json.loads(lines[-1])


def _report(xcom: dict) -> dict:
    """The verdict.json filed beside the report XCom names."""
    return json.loads((Path(xcom["report"]).parent / "verdict.json").read_text())


def _slack_texts(sandbox: Path, name: str) -> list[str]:
    """What the sandbox's Slack was told of the entry (its messages start with the entry's name)."""
    state = json.loads((sandbox / "services.json").read_text())
    return [m["text"] for m in state.get("slack_messages", []) if m["text"].startswith(f"{name}: ")]


def test_the_ready_dag_file_gives_one_dag_per_entry_as_scheduled(airflow):
    """Every entry of the checkout's own schedules file is a DAG: its cron, one run at a time, its tags."""
    airflow.schedules.write_text((ROOT / "params" / "schedules.yaml").read_text())
    listed = airflow.airflow("dags", "list", "--local", "-o", "json")
    assert listed.returncode == 0, _said(listed)
    names = [line.split("- name: ", 1)[1].strip() for line in airflow.schedules.read_text().splitlines()
             if line.strip().startswith("- name: ")]
    assert sorted(d["dag_id"] for d in _json(listed)) == sorted(f"aias_{n}" for n in names)
    done = airflow.airflow("dags", "reserialize")   # the DAGs into the metadata database, as the UI reads them
    assert done.returncode == 0, _said(done)
    assert airflow.query("SELECT timetable_summary, max_active_runs FROM dag WHERE dag_id = 'aias_health-5min'") \
        == [("*/5 * * * *", 1)]
    assert {t for (t,) in airflow.query("SELECT name FROM dag_tag WHERE dag_id = 'aias_health-5min'")} \
        == {"health-check", "sandbox"}


def test_an_ok_run_is_a_successful_task_with_its_verdict_and_report(airflow):
    dag = airflow.entry("health-ok", "health-check", "{samples: 10, interval_ms: 0}")
    done = airflow.dags_test(dag)
    assert done.returncode == 0, _said(done)
    assert airflow.tries(dag) == [(1, "success")]
    xcom = airflow.xcom(dag)
    assert xcom["status"] == "OK" and xcom["exit_code"] == 0 and xcom["verdict"].startswith("OK: ")
    assert xcom["verdict"] in done.stdout, "the run's own lines are in the task log"
    verdict = _report(xcom)
    assert verdict["run_id"] == xcom["run_id"] and verdict["status"] == "OK"
    assert Path(xcom["report"]).is_file() and Path(xcom["report"]).is_relative_to(airflow.output)


def test_a_warning_is_a_successful_task_that_shows_the_warning(airflow, scenario):
    scenario("autovacuum-disabled")
    dag = airflow.entry("vacuum-warning", "database-health")
    done = airflow.dags_test(dag)
    assert done.returncode == 0, _said(done)
    assert airflow.tries(dag) == [(1, "success")]
    xcom = airflow.xcom(dag)
    assert xcom["status"] == "WARNING" and xcom["verdict"].startswith("WARNING: DB_VACUUM_LAG")
    assert any("[warning" in line and "WARNING: DB_VACUUM_LAG" in line and "report: " in line
               for line in done.stdout.splitlines()), "the warning stands out in the task log, with its report"
    assert _report(xcom)["status"] == "WARNING"


def test_a_critical_run_fails_without_retry_and_its_change_is_told_then_the_recovery(airflow, sandbox):
    """API down: the task fails at once (exit 2, no second try), the entry's Slack is told from the failure
    callback; the next run is OK again, and the success callback tells the recovery."""
    dag = airflow.entry("api-watch", "health-check", "{samples: 10, interval_ms: 0}", "{when: change, slack: true}")
    down = airflow.dags_test(dag, AIAS_SANDBOX_API_URL="http://127.0.0.1:9")   # the discard port: nobody answers
    assert airflow.tries(dag) == [(1, "failed")], _said(down)
    xcom = airflow.xcom(dag)
    assert xcom["status"] == "CRITICAL" and xcom["verdict"].startswith("CRITICAL: API_DOWN")
    assert _report(xcom)["run_id"] == xcom["run_id"]
    (told,) = _slack_texts(sandbox, "api-watch")
    assert "CRITICAL" in told.split("\n")[0], told

    up = airflow.dags_test(dag)
    assert up.returncode == 0, _said(up)
    assert airflow.tries(dag) == [(1, "success")]
    assert len(_slack_texts(sandbox, "api-watch")) == 2, "the recovery is told too"
    assert "CRITICAL -&gt; OK" in _slack_texts(sandbox, "api-watch")[-1].split("\n")[0]


def test_an_unknown_run_is_retried_once_then_fails(airflow):
    """The profile names a database that does not exist: the run cannot judge (exit 3); Airflow tries it again
    once after the retry delay, then the task fails; both runs are filed."""
    dsn = urlsplit(monitor_dsn())
    wrong = urlunsplit(dsn._replace(path="/no_such_database"))
    dag = airflow.entry("db-unknown", "database-health")
    done = airflow.dags_test(dag, AIAS_SANDBOX_DATABASE_URL=wrong)
    assert airflow.tries(dag) == [(1, "failed"), (2, "failed")], _said(done)   # tried again once, after 1 s
    xcom = airflow.xcom(dag)
    assert xcom["status"] == "UNKNOWN" and xcom["verdict"].startswith("UNKNOWN: DB_UNKNOWN_DATABASE")
    filed = sorted(p.parent for p in airflow.output.glob("*/*/verdict.json"))
    assert len(filed) == 2 and {json.loads((f / "verdict.json").read_text())["status"] for f in filed} == {"UNKNOWN"}
    assert wrong not in done.stdout + done.stderr, "the connection string is a secret: never in the task log"


def test_a_bad_schedules_file_is_an_import_error_naming_the_entry_and_loads_no_dag(airflow):
    entry = "{{name: {}, cron: '{}', runbook: health-check, environment: sandbox}}"
    airflow.schedules.write_text(f"schedules:\n  - {entry.format('fine', '*/5 * * * *')}\n"
                                 f"  - {entry.format('broken', '61 * * * *')}\n")
    errors = airflow.airflow("dags", "list-import-errors", "--local", "-o", "json")
    (error,) = _json(errors)
    assert error["filepath"].endswith("aias_schedules.py")
    assert "entry 2 ('broken'): cron '61 * * * *' is not a cron expression" in error["error"], error["error"]
    listed = airflow.airflow("dags", "list", "--local", "-o", "json")
    assert [d["dag_id"] for d in _json(listed)] == [], "not even the good entry's DAG"


def test_a_task_into_a_bucket_files_its_report_there_with_its_entry(airflow, s3_archive):
    """The entry's archive: is an s3:// URL (moto's server, reached the standard AWS way from Airflow's worker): the
    report is uploaded whole, its record names the entry, and XCom points at it in the bucket."""
    dag = airflow.entry("health-s3", "health-check", "{samples: 10, interval_ms: 0}", archive=s3_archive)
    done = airflow.dags_test(dag)
    assert done.returncode == 0, _said(done)
    assert airflow.tries(dag) == [(1, "success")]
    xcom = airflow.xcom(dag)
    (record,) = runs(s3_archive)
    assert record["run_id"] == xcom["run_id"] and record["entry"] == "health-s3" and record["status"] == "OK"
    assert xcom["report"] == f"{s3_archive}/{record['report_dir']}/report.html"
    bucket = open_archive(s3_archive)
    assert json.loads(bucket.read(f"{record['report_dir']}/verdict.json"))["run_id"] == xcom["run_id"]
    assert not list(airflow.output.glob("*/*/report.html")), "filed in the bucket, not on the worker"


def test_a_task_stopped_by_airflow_still_files_its_partial_report(airflow):
    """A task marked failed (or its worker stopped): Airflow's SIGTERM reaches the task, whose on_kill passes it to
    the run; the run files what it recorded, the task fails without a retry."""
    dag = airflow.entry("stuck-stopped", "stuck-check")
    env = airflow.env(AIAS_NOTEBOOKS_DIR=str(FIXTURE_NOTEBOOKS))
    proc = subprocess.Popen([str(AIRFLOW), "dags", "test", dag], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=airflow.home)
    try:
        recorded = lambda: any("CHECK_BEFORE_HANG" in p.read_text(errors="replace")  # noqa: E731
                               for p in airflow.output.glob(".work/*/findings.jsonl"))
        wait_for(lambda: recorded() or proc.poll() is not None, BOUND_S, "the run to record its finding")
        assert proc.poll() is None, proc.communicate()[0][-6000:]
        proc.send_signal(signal.SIGTERM)
        said, _ = proc.communicate(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert airflow.tries(dag) == [(1, "failed")], said[-6000:]
    xcom = airflow.xcom(dag)
    assert xcom["verdict"].startswith("WARNING: CHECK_BEFORE_HANG"), xcom
    assert "interrupted" in {f["code"]: f for f in _report(xcom)["findings"]}["RUNBOOK_ERROR"]["evidence"]["error"]
    assert "stopped by Airflow" in said


def test_a_run_stopped_by_execution_timeout_still_files_its_partial_report(airflow):
    """stuck-check records a WARNING, then hangs: Airflow's execution_timeout stops the task, the run gets SIGTERM
    and files its partial report, the task fails without a retry."""
    dag = airflow.entry("stuck", "stuck-check")
    notebooks = {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    done = airflow.dags_test(dag, AIAS_AIRFLOW_TASK_TIMEOUT="30", **notebooks)
    assert airflow.tries(dag) == [(1, "failed")], _said(done)
    xcom = airflow.xcom(dag)
    assert xcom["verdict"].startswith("WARNING: CHECK_BEFORE_HANG"), xcom
    verdict = _report(xcom)
    codes = {f["code"]: f for f in verdict["findings"]}
    assert codes["CHECK_BEFORE_HANG"]["severity"] == "WARNING"
    assert "interrupted" in codes["RUNBOOK_ERROR"]["evidence"]["error"]
    assert "execution_timeout" in done.stdout and "stopped by Airflow" in done.stdout
    assert not list(airflow.output.glob(".work/*")), "the run's private workspace is gone once filed"
