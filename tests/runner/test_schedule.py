"""Scheduled runs: `schedule run-due` runs exactly the due entries, once per slot (called twice, or twice at once),
catches a missed slot up once, refuses a bad schedules file before anything runs; `run-all` runs a set of
runbooks in parallel and exits with the worst exit code."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aias_runbooks.runner.run_all import worst

from ..helpers import CLI, FIXTURE_NOTEBOOKS, cli, run_due, runs, wait_for

# Cheap runbooks on the sandbox: a health check of 10 requests takes a few seconds.
SCHEDULES = """\
schedules:
  - name: health-5min
    cron: "*/5 * * * *"
    runbook: health-check
    environment: sandbox
    parameters: {samples: 10, interval_ms: 0}
  - name: health-hourly
    cron: "0 * * * *"
    runbook: health-check
    environment: sandbox
    parameters: {samples: 10, interval_ms: 0}
    incident: INC-77
  - name: health-nightly
    cron: "30 3 * * *"
    runbook: health-check
    environment: sandbox
    parameters: {samples: 10, interval_ms: 0}
"""


@pytest.fixture
def schedules(tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


def entries_run(proc: subprocess.CompletedProcess) -> list[str]:
    return sorted(line.split(" ", 1)[0] for line in proc.stdout.splitlines())


def test_run_due_runs_exactly_the_due_entries_once_per_slot(sandbox, schedules, tmp_path):
    output = tmp_path / "output"
    first = run_due(schedules, output, "2026-11-26T20:00:20Z")
    assert first.returncode == 0, first.stdout + first.stderr
    assert entries_run(first) == ["health-5min", "health-hourly"], "20:00 is a slot of both; 03:30 is not"
    assert first.stderr == ""
    assert all("(2026-11-26 20:00Z): OK: " in line and "report: " in line for line in first.stdout.splitlines()), \
        "one line per run: entry, slot, summary, report"
    assert sorted((r["runbook"], r["incident"] or "-") for r in runs(output)) == [("health-check", "-"),
                                                                                   ("health-check", "INC-77")]
    again = run_due(schedules, output, "2026-11-26T20:00:50Z")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", ""), "the same minute again: nothing, silently"
    assert len(runs(output)) == 2
    state = json.loads((output / ".schedule" / "health-5min.json").read_text())
    assert state["slot"] == "2026-11-26T20:00:00+00:00" and state["exit_code"] == 0


def test_two_run_dues_at_once_make_one_run_per_slot(sandbox, schedules, tmp_path):
    output = tmp_path / "output"
    args = [*CLI, "schedule", "run-due", "--schedules", str(schedules), "--output", str(output),
            "--now", "2026-11-26T21:00:05Z"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    lines = [line for _, out, _ in results for line in out.splitlines()]
    assert sorted(line.split(" ", 1)[0] for line in lines) == ["health-5min", "health-hourly"], \
        "each due entry ran once, by one of the two"
    assert len(runs(output)) == 2


def test_missed_slots_are_caught_up_once_with_the_latest(sandbox, schedules, tmp_path):
    output = tmp_path / "output"
    assert run_due(schedules, output, "2026-11-26T20:00:00Z").returncode == 0   # both run; nightly: baseline
    later = run_due(schedules, output, "2026-11-26T20:23:40Z")   # 20:05 .. 20:20 missed (down, say)
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines()[0].startswith("health-5min (2026-11-26 20:20Z): ")
    assert entries_run(later) == ["health-5min"], "four missed slots: one run, for the latest; hourly is not due"
    next_day = run_due(schedules, output, "2026-11-27T05:10:00Z")   # nightly's 03:30 and the others missed
    assert entries_run(next_day) == ["health-5min", "health-hourly", "health-nightly"]
    assert "health-nightly (2026-11-27 03:30Z)" in next_day.stdout
    assert "health-hourly (2026-11-27 05:00Z)" in next_day.stdout
    assert len(runs(output)) == 2 + 1 + 3


def test_an_entry_still_running_is_not_started_again_and_its_slot_is_caught_up(sandbox, schedules, tmp_path):
    """While an entry's earlier run holds its lock (here: the test holds it), run-due leaves its slot open."""
    output = tmp_path / "output"
    assert entries_run(run_due(schedules, output, "2026-11-26T19:00:00Z")) == ["health-5min", "health-hourly"]
    with open(output / ".schedule" / "health-hourly.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = run_due(schedules, output, "2026-11-26T20:00:00Z")
    assert (busy.returncode, entries_run(busy)) == (0, ["health-5min"])
    freed = run_due(schedules, output, "2026-11-26T20:01:00Z")
    assert entries_run(freed) == ["health-hourly"] and "(2026-11-26 20:00Z)" in freed.stdout


def test_run_due_exit_code_is_the_worst_run(sandbox, tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n"
                    "  - {name: crash, cron: '* * * * *', runbook: crashing-check, environment: sandbox}\n"
                    "  - {name: leak, cron: '*/2 * * * *', runbook: leaky-check, environment: sandbox}\n")
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    result = run_due(path, tmp_path / "output", "2026-11-26T20:02:00Z", env=env)
    assert entries_run(result) == ["crash", "leak"]
    assert result.returncode == 1, "WARNING (crashing-check) outranks UNKNOWN (leaky-check), as verdicts rank"


BAD = [
    ("{name: a, cron: '61 * * * *', runbook: health-check, environment: sandbox}",
     "entry 2 ('a'): cron '61 * * * *' is not a cron expression; valid: 5 fields"),
    ("{name: a, cron: '*/5 * * *', runbook: health-check, environment: sandbox}", "has 4 field(s); valid: 5 fields"),
    ("{name: a, cron: '0 0 30 2 *', runbook: health-check, environment: sandbox}", "never matches a date"),
    ("{name: a, cron: '* * * * *', runbook: health-chek, environment: sandbox}",
     "entry 2 ('a'): unknown runbook 'health-chek'; valid: "),
    ("{name: a, cron: '* * * * *', runbook: health-check, environment: sandbox, parameters: {samples: 0}}",
     "entry 2 ('a'): health-check: parameter 'samples' must be between 1 and 500"),
    ("{name: a, cron: '* * * * *', runbook: health-check, environment: sandbox, parameters: {sample: 3}}",
     "runbook 'health-check' has no parameter 'sample'; valid: "),
    ("{name: a, cron: '* * * * *', runbook: health-check, environment: staging}", "unknown environment 'staging'"),
    ("{name: a, cron: '* * * * *', runbook: health-check}", "`environment` is required"),
    ("{name: health-5min, cron: '* * * * *', runbook: health-check, environment: sandbox}", "is used twice"),
]


def test_a_now_ahead_of_the_clock_is_refused_and_writes_nothing(tmp_path, schedules):
    """--now in the future would record that slot as taken, silencing the entry until then: refused before
    anything is read or written (no sandbox needed: nothing gets as far as the target)."""
    output = tmp_path / "output"
    result = run_due(schedules, output, "2099-01-01T00:00:00Z")
    assert (result.returncode, result.stdout) == (3, ""), result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("aias-runbooks: error: --now 2099-01-01T00:00:00+00:00 is ahead of this host's clock")
    assert "valid: a time at most 60 s ahead of now" in line
    assert not output.exists()


def test_no_slot_later_than_the_clock_is_ever_recorded(sandbox, tmp_path):
    """A --now a few seconds ahead (another host's clock) is taken as now; a slot recorded in the future (by a
    run-due before this check) is no slot: the entry is due again, not silenced until then."""
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - {name: every-minute, cron: '* * * * *', runbook: health-check, "
                    "environment: sandbox, parameters: {samples: 10, interval_ms: 0}}\n")
    output = tmp_path / "output"
    state = output / ".schedule" / "every-minute.json"
    ahead = datetime.now(timezone.utc) + timedelta(seconds=59)
    result = run_due(path, output, ahead.isoformat())
    assert result.returncode == 0, result.stdout + result.stderr
    assert datetime.fromisoformat(json.loads(state.read_text())["slot"]) <= datetime.now(timezone.utc)
    state.write_text(json.dumps({"slot": "2099-01-01T00:00:00+00:00", "cron": "* * * * *"}) + "\n")
    again = run_due(path, output, datetime.now(timezone.utc).isoformat())
    assert again.returncode == 0 and entries_run(again) == ["every-minute"], again.stdout + again.stderr
    assert datetime.fromisoformat(json.loads(state.read_text())["slot"]) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "folder", "2 MiB"])
def test_a_schedules_file_that_is_not_a_small_regular_file_is_refused(tmp_path, kind):
    """/dev/zero would be read until memory runs out, a FIFO would hang run-due: each is one line and exit 3,
    read no further than a stat, and nothing is written. The timeout is only a safety net for the FIFO."""
    path = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo", "folder": tmp_path,
            "2 MiB": tmp_path / "big.yaml"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "2 MiB":
        path.write_text("schedules: []\n" + "#" * (2 * 1024 * 1024))
    output = tmp_path / "output"
    result = cli("schedule", "run-due", "--schedules", str(path), "--output", str(output), timeout=60)
    assert (result.returncode, result.stdout) == (3, ""), result.stderr
    (line,) = result.stderr.splitlines()
    expect = {"/dev/zero": "is not a regular file", "fifo": "is not a regular file", "folder": "is a folder",
              "2 MiB": "is larger than 1 MiB"}[kind]
    assert line.startswith("aias-runbooks: error: schedules file ") and expect in line, line
    assert not output.exists()


@pytest.mark.parametrize("entry, message", BAD, ids=[m.split(";")[0][-40:] for _, m in BAD])
def test_a_bad_schedules_file_is_one_line_and_exit_3_before_anything_runs(sandbox, tmp_path, entry, message):
    """The bad entry comes second: the good first one must not run either."""
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - {name: health-5min, cron: '* * * * *', runbook: health-check, "
                    f"environment: sandbox}}\n  - {entry}\n")
    output = tmp_path / "output"
    result = run_due(path, output, "2026-11-26T20:00:00Z")
    assert result.returncode == 3 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not output.exists(), "nothing ran, nothing was written: not even the report root"


def test_run_all_runs_the_set_in_parallel(sandbox, tmp_path):
    """Two runs of a fixture that waits (with a deadline) to meet another run: both meet only if run-all ran them at
    once, however loaded the machine (the start and end times of two quick runbooks may not overlap under load)."""
    output, meet = tmp_path / "output", tmp_path / "meet"
    meet.mkdir()
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS), "AIAS_TEST_MEET_DIR": str(meet)}
    result = cli("run-all", "--runbooks", "rendezvous-check,rendezvous-check", "--parallel", "2",
                 "--output", str(output), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["runbook", "status", "top", "finding"]
    assert [row.split()[:2] for row in rows] == [["rendezvous-check", "OK"]] * 2, result.stdout   # not RAN_ALONE
    assert all("report.html" in row for row in rows)
    filed = runs(output)
    assert len(filed) == 2 and all(r["status"] == "OK" for r in filed)


def test_run_all_exit_code_is_the_worst_run(sandbox, tmp_path):
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    result = cli("run-all", "--runbooks", "crashing-check,leaky-check", "--output", str(tmp_path / "o"), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {row.split()[0]: row.split()[1:3] for row in result.stdout.splitlines()[1:]}
    assert rows == {"crashing-check": ["WARNING", "CHECK_BEFORE_CRASH"], "leaky-check": ["UNKNOWN", "RUNBOOK_ERROR"]}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_run_all_stopped_stops_its_runs_and_each_still_leaves_its_report(sandbox, tmp_path, signum):
    """One at a time: stuck-check hangs, crashing-check waits its turn; stopping run-all stops the first (its
    report filed with the WARNING it had recorded) and never starts the second."""
    output = tmp_path / "output"
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    proc = subprocess.Popen([*CLI, "run-all", "--runbooks", "stuck-check,crashing-check", "--parallel", "1",
                             "--output", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    # as test_interruptions waits: the finding recorded, then the printed key (masked) saved: the cell hangs
    hanging = lambda: any("CHECK_BEFORE_HANG" in p.read_text() for p in output.glob(".work/*/findings.jsonl")) \
        and any("[REDACTED]" in p.read_text() for p in output.glob(".work/*/notebook.ipynb"))  # noqa: E731
    wait_for(lambda: hanging() or proc.poll() is not None, 120, "stuck-check to record its finding and hang")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, f"the WARNING recorded before the stop outranks NOT RUN (UNKNOWN)\n{stdout}{stderr}"
    rows = {row.split()[0]: row for row in stdout.splitlines()[1:]}
    assert "WARNING" in rows["stuck-check"] and "report.html" in rows["stuck-check"]
    assert "NOT RUN" in rows["crashing-check"]
    filed = runs(output)
    assert [(r["runbook"], r["status"]) for r in filed] == [("stuck-check", "WARNING")]
    assert "interrupted" in filed[0]["error"]
    assert not list(output.glob(".work/*")), "the stopped run's workspace was filed, not left behind"


def test_run_all_refuses_an_unknown_runbook_before_anything_runs(sandbox, tmp_path):
    result = cli("run-all", "--runbooks", "health-check,nope", "--output", str(tmp_path / "o"))
    assert result.returncode == 3 and "unknown runbook 'nope'" in result.stderr
    assert not (tmp_path / "o").exists(), "nothing was written: not even the report root"


def test_worst_ranks_exit_codes_as_verdicts_rank():
    assert worst([]) == 0
    assert worst([0, 3]) == 3
    assert worst([3, 1, 0]) == 1
    assert worst([1, 2, 3]) == 2
    assert worst([0, -15]) == 3, "a child killed outright is UNKNOWN"


def test_the_shipped_schedules_file_is_valid_and_schedules_monitoring_with_notify(tmp_path):
    """params/schedules.yaml, as shipped, passes the same checks as any schedules file."""
    from aias_runbooks import schedule
    entries = {e.name: e for e in schedule.load(schedule.default_path(), tmp_path / "output")}
    assert entries["monitoring-5min"].job.runbook == "monitoring"
    assert entries["health-5min"].job.runbook == "health-check"
