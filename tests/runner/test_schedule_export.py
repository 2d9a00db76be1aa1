"""`schedule export`: the schedules file as Kubernetes CronJobs and systemd timers (and Airflow's DAG file), read back
as Kubernetes and systemd read them: every manifest parses with the keys that keep one run at a time and a missed
slot caught up once; every OnCalendar= fires at exactly the cron's slots (systemd-analyze against croniter); a bad
file, a cron systemd cannot express or a file already there is one line, exit 3, nothing written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from croniter import croniter

from aias_runbooks.errors import UsageError
from aias_runbooks.schedule_export import on_calendar, shortest_interval

from ..helpers import cli

SCHEDULES = """\
schedules:
  - {name: health-5min, cron: "*/5 * * * *", runbook: health-check, environment: sandbox,
     parameters: {samples: 10}}
  - {name: webhooks_15min, cron: "7,22,37,52 * * * *", runbook: stripe-webhook-failures, environment: sandbox,
     archive: "s3://acme-runbooks/prod"}
  - {name: billing.nightly, cron: "15 4 * * *", runbook: stripe-webhook-failures, environment: sandbox}
  - {name: payday, cron: "0 9 1,15 * 1-5", runbook: database-health, environment: sandbox}
"""
DEADLINES = {"aias-health-5min": 300, "aias-webhooks-15min": 900, "aias-billing-nightly": 86400,
             "aias-payday": 86400}
# Cron expressions as operators write them, each to fire at exactly the same instants under systemd.
CRONS = ["*/5 * * * *", "7,22,37,52 * * * *", "15 4 * * *", "0 * * * *", "30 2 * * 1-5", "0 9-17/2 * * *",
         "0 0 1,15 * 1-5", "0 0 1 * *", "0 6 * jan-mar mon", "5-20 3 * * 0", "0 0 * * 7", "0 12 29 2 *",
         "*/20 1,13 10-12 * *", "0 0 */2 * 1", "59 23 31 12 *"]


@pytest.fixture
def schedules(tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


def export(schedules: Path, fmt: str, out: Path) -> subprocess.CompletedProcess:
    return cli("schedule", "export", "--format", fmt, "--schedules", str(schedules), "--out", str(out), timeout=120)


def test_k8s_cronjobs_parse_back_with_one_run_at_a_time_and_run_dues_catch_up(sandbox, schedules, tmp_path):
    out = tmp_path / "k8s"
    result = export(schedules, "k8s-cronjob", out)
    assert result.returncode == 0, result.stderr
    assert sorted(Path(line).name for line in result.stdout.splitlines()) == \
        sorted(f"{name}.cronjob.yaml" for name in DEADLINES)
    crons = {"aias-health-5min": "*/5 * * * *", "aias-webhooks-15min": "7,22,37,52 * * * *",
             "aias-billing-nightly": "15 4 * * *", "aias-payday": "0 9 1,15 * 1-5"}
    for name, deadline in DEADLINES.items():
        text = (out / f"{name}.cronjob.yaml").read_text()
        job = yaml.safe_load(text)
        assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("batch/v1", "CronJob", name)
        spec = job["spec"]
        assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (crons[name], "Etc/UTC", "Forbid")
        assert spec["startingDeadlineSeconds"] == deadline, "a late start only until the next slot"
        assert f"startingDeadlineSeconds {deadline}: the shortest interval between this entry's slots" in text
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        entry = job["metadata"]["annotations"]["aias-runbooks/entry"]
        assert container["command"] == ["aias-runbooks", "schedule", "run", entry, "--schedules",
                                        "$(AIAS_HOME)/params/schedules.yaml"], "the image's copy of the exported file"
        assert container["image"] == "REPLACE-WITH-YOUR-IMAGE"
        assert container["env"][0] == {"name": "AIAS_HOME", "value": "/opt/aias-runbooks"}
        refs = [var["valueFrom"]["secretKeyRef"] for var in container["env"][1:]]
        assert refs and all(ref["name"] == "aias-runbooks-sandbox" and set(ref) == {"name", "key"} for ref in refs)
        rules = spec["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
        assert rules == [{"action": "FailJob", "onExitCodes": {"containerName": "aias-runbooks", "operator": "In",
                                                               "values": [1, 2]}}], "a verdict is never retried"
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 1, "exit 3 (could not judge): one retry"
    assert "Reports are filed in s3://acme-runbooks/prod." in (out / "aias-webhooks-15min.cronjob.yaml").read_text()
    values = [v for k, v in _sandbox_secrets().items()]
    written = "".join(p.read_text() for p in out.iterdir())
    assert values and not [v for v in values if v in written], "secrets by name only, never a value"


def _sandbox_secrets() -> dict[str, str]:
    from aias_runbooks.settings import load_environment
    profile = load_environment("sandbox")
    return {role: secret.reveal() for role in profile.secret_vars if (secret := profile.secret(role))
            and len(secret.reveal()) >= 8}


def test_systemd_units_run_the_entry_now_at_its_calendar(sandbox, schedules, tmp_path):
    out = tmp_path / "systemd"
    result = export(schedules, "systemd", out)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"aias-runbooks-{n}.{kind}" for n in ("health-5min", "webhooks_15min", "billing.nightly",
                                                                  "payday") for kind in ("service", "timer"))
    service = (out / "aias-runbooks-payday.service").read_text()
    assert "Type=oneshot" in service
    assert re.search(r"^ExecStart=\S*aias-runbooks schedule run payday --schedules " + re.escape(str(schedules)) +
                     "$", service, re.M), service
    timer = (out / "aias-runbooks-payday.timer").read_text()
    assert "Persistent=true" in timer
    assert re.findall("^OnCalendar=(.*)$", timer, re.M) == ["*-*-01,15 09:00:00 UTC", "Mon..Fri *-*-* 09:00:00 UTC"], \
        "cron matches either day field: two calendars, one timer"
    assert "OnCalendar=*-*-* *:00/5:00 UTC" in (out / "aias-runbooks-health-5min.timer").read_text()


@pytest.mark.parametrize("cron", CRONS)
def test_each_oncalendar_fires_at_exactly_the_crons_slots(cron):
    """systemd-analyze's own next elapses from a fixed time, against croniter's (run-due's) slots: 400 of each (or
    ten years' worth), a year and more for the daily and sparser ones."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (the systemd package): CI must check the timers")
        pytest.skip("systemd-analyze is not installed")
    base, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2036, 1, 1, tzinfo=timezone.utc)
    slots = croniter(cron, base)
    expected = [slot for slot in (slots.get_next(datetime) for _ in range(400)) if slot < end]
    count = len(expected)
    fired: set[datetime] = set()
    for calendar in on_calendar(cron):
        proc = subprocess.run([analyze, "calendar", f"--iterations={count}", "--base-time=2026-01-01 00:00:00 UTC",
                               calendar], capture_output=True, text=True, env=os.environ | {"TZ": "UTC"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        fired |= {datetime.strptime(m, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
                  for m in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", proc.stdout)}
    assert sorted(fired)[:count] == expected


def test_a_cron_systemd_cannot_express_is_one_line_and_nothing_is_written(sandbox, tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - {name: ok, cron: '0 * * * *', runbook: health-check, environment: sandbox}\n"
                    "  - {name: month-end, cron: '0 0 L * *', runbook: health-check, environment: sandbox}\n")
    out = tmp_path / "systemd"
    result = export(path, "systemd", out)
    assert (result.returncode, result.stdout) == (3, "")
    (line,) = result.stderr.splitlines()
    assert "entry 'month-end': cron '0 0 L * *' cannot be a systemd timer" in line
    assert not out.exists(), "the good entry was not written either"
    with pytest.raises(UsageError, match="the nth weekday"):
        on_calendar("0 0 * * 1#2", "second-monday")


def test_an_existing_file_is_never_overwritten(sandbox, schedules, tmp_path):
    out = tmp_path / "k8s"
    out.mkdir()
    mine = out / "aias-payday.cronjob.yaml"
    mine.write_text("# edited by hand\n")
    result = export(schedules, "k8s-cronjob", out)
    assert (result.returncode, result.stdout) == (3, "")
    (line,) = result.stderr.splitlines()
    assert f"{mine} exists; nothing was written (files are never overwritten" in line
    assert mine.read_text() == "# edited by hand\n"
    assert [p.name for p in out.iterdir()] == [mine.name], "no other file, no temporary left"


def test_a_bad_schedules_file_exports_nothing(sandbox, tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - {name: a, cron: '*/5 * * *', runbook: health-check, environment: sandbox}\n")
    out = tmp_path / "out"
    for fmt in ("k8s-cronjob", "systemd", "airflow"):
        result = export(path, fmt, out)
        assert (result.returncode, result.stdout) == (3, "")
        (line,) = result.stderr.splitlines()
        assert "entry 1 ('a'): cron '*/5 * * *' has 4 field(s)" in line
    assert not out.exists()


def test_airflow_export_writes_the_dag_file(sandbox, schedules, tmp_path):
    from aias_runbooks.integrations.airflow import dag_file_text
    out = tmp_path / "dags"
    result = export(schedules, "airflow", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out / "aias_schedules.py")]
    assert (out / "aias_schedules.py").read_text() == dag_file_text()


@pytest.mark.parametrize("cron, seconds", [("*/5 * * * *", 300), ("7,22,37,52 * * * *", 900), ("0 * * * *", 3600),
                                           ("0 0,23 * * *", 3600), ("0 0 1 * *", 28 * 86400),
                                           ("30 2 * * 1-5", 86400), ("0 9 * * 1", 7 * 86400)])
def test_the_starting_deadline_is_the_shortest_interval_between_slots(cron, seconds):
    assert shortest_interval(cron) == seconds


def test_a_path_a_unit_file_would_misread_is_refused(sandbox, tmp_path):
    """A newline (a second directive), a space (a second argument), '%' (a specifier) in the schedules file's path:
    one line, nothing written."""
    for name in ("odd\nExecStartPre=touch gotcha", "with space", "100%"):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "schedules.yaml"
        path.write_text(SCHEDULES)
        out = tmp_path / "systemd"
        result = export(path, "systemd", out)
        assert (result.returncode, result.stdout) == (3, "")
        (line,) = result.stderr.splitlines()
        assert "the schedules file's path" in line and "valid: a plain path" in line, line
        assert not out.exists()
