"""aias-runbooks on Airflow: one DAG per entry of the checkout's params/schedules.yaml (Airflow 3).

Copy this file into Airflow's DAGs folder and set, for the DAG processor and the workers:
  AIAS_HOME                  the aias-runbooks checkout, installed (`make .venv/.installed`): each task runs its
                             .venv/bin/aias-runbooks, `run ... --entry NAME`, and its exit code is the task's state
  AIAS_SCHEDULES_FILE        optional: another schedules file (default: AIAS_HOME/params/schedules.yaml)
  AIAS_AIRFLOW_TASK_TIMEOUT  optional: seconds a run may take; then it is stopped and files its partial report
  AIAS_AIRFLOW_RETRY_DELAY   optional: seconds before an UNKNOWN run (exit 3) is tried again (default: 60)
A schedules file with a mistake defines no DAG: the import error names the entry, as `schedule run-due` would. The
file is checked as run-due checks it, profiles included: give the DAG processor the workers' environment.
"""

import os
import sys

home = os.environ.get("AIAS_HOME")
if not home:
    raise RuntimeError("AIAS_HOME is not set: set it to the aias-runbooks checkout (e.g. /opt/aias-runbooks)")
if home not in sys.path:
    sys.path.append(home)   # the package's integration needs only Airflow and the standard library

from aias_runbooks.integrations.airflow import build_dags  # noqa: E402

globals().update(build_dags(home))
