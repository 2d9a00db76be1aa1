"""`schedule check`, `schedule run` and `schedule notify`: an orchestrator's side of params/schedules.yaml, through
the real CLI on the sandbox. check lists the entries exactly as run-due checks them; run runs one entry now (no
slot, no lock), filed with its entry's name, exit code the run's; a change of status is told once however many
hosts run the entry, judged from the shared catalogue, never one host's state; notify tells it for a run already
filed (an Airflow callback) and refuses a run it cannot judge."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

from ..helpers import CLI, FIXTURE_NOTEBOOKS, cli, runs, wait_for

SENDER = "AIAS Runbooks <runbooks@aiautomatedsystems.ca>"   # the sandbox's verified sending domain


def write(tmp_path: Path, oncall: str, archive: str | None = None) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n"
                    "  - name: health-5min\n    cron: '*/5 * * * *'\n    runbook: health-check\n"
                    "    environment: sandbox\n    parameters: {samples: 10, interval_ms: 0}\n"
                    f"    notify: {{email: ['{oncall}'], from: '{SENDER}'}}\n"
                    + (f"    archive: {archive}\n" if archive else "")
                    + "  - {name: db-hourly, cron: '0 * * * *', runbook: database-health, environment: sandbox,"
                    " incident: INC-9}\n")
    return path


def emails_to(sandbox: Path, address: str) -> list[dict]:
    """What the sandbox's Resend recorded as sent to this address."""
    state = json.loads((sandbox / "services.json").read_text())
    return [e for e in state.get("emails", []) if address in e["to"]]


def schedule_run(schedules: Path, host: Path, name: str = "health-5min", *extra: str):
    """`schedule run NAME` as one host runs it: its own report root (--output, the private workspace)."""
    return cli("schedule", "run", name, "--schedules", str(schedules), "--output", str(host), *extra)


def test_check_lists_the_entries_as_run_due_checks_them(sandbox, tmp_path):
    schedules = write(tmp_path, "oncall@example.com", archive="s3://acme-runbooks/prod")
    listed = cli("schedule", "check", "--schedules", str(schedules), "--json")
    assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
    health, db = json.loads(listed.stdout)["schedules"]
    assert health == {"name": "health-5min", "cron": "*/5 * * * *", "runbook": "health-check",
                      "environment": "sandbox", "parameters": {"samples": 10, "interval_ms": 0}, "incident": None,
                      "archive": "s3://acme-runbooks/prod",
                      "notify": {"when": "change", "email": ["oncall@example.com"], "from": SENDER},
                      "argv": ["run", "health-check", "--env", "sandbox", "-p", "samples=10", "-p", "interval_ms=0",
                               "--archive", "s3://acme-runbooks/prod", "--entry", "health-5min"]}
    assert db["argv"] == ["run", "database-health", "--env", "sandbox", "--incident", "INC-9", "--entry", "db-hourly"]
    plain = cli("schedule", "check", "--schedules", str(schedules))
    assert plain.returncode == 0 and plain.stdout.splitlines()[-1] == "2 entries valid"

    schedules.write_text(schedules.read_text().replace("s3://acme-runbooks/prod", "ftp://acme/prod"))
    bad = cli("schedule", "check", "--schedules", str(schedules), "--json")
    assert (bad.returncode, bad.stdout) == (3, "")
    (line,) = bad.stderr.splitlines()
    assert "entry 1 ('health-5min'): `archive` 'ftp://acme/prod' is neither a folder nor an s3:// URL; valid: a " \
        "folder, or s3://bucket/prefix" in line, line
    schedules.write_text(schedules.read_text().replace("ftp://acme/prod", "s3://Acme_Runbooks/prod"))
    bad = cli("schedule", "check", "--schedules", str(schedules), "--json")
    assert (bad.returncode, bad.stdout) == (3, "")
    assert "entry 1 ('health-5min'): archive 's3://Acme_Runbooks/prod' is not valid" in bad.stderr


def test_run_is_one_run_now_filed_with_its_entry_and_no_slot(sandbox, tmp_path):
    schedules, archive = write(tmp_path, f"oncall-{secrets.token_hex(4)}@example.com"), tmp_path / "archive"
    host = tmp_path / "host-a"
    first = schedule_run(schedules, host, "health-5min", "--archive", str(archive))
    assert first.returncode == 0, first.stdout + first.stderr
    (line,) = first.stdout.splitlines()
    assert line.startswith("health-5min: OK: ") and f"report: {archive}/" in line
    again = schedule_run(schedules, host, "health-5min", "--archive", str(archive))
    assert again.returncode == 0, "the orchestrator chose the time: no slot to have been taken already"
    filed = runs(archive)
    assert [(r["runbook"], r["entry"], r["status"]) for r in filed] == [("health-check", "health-5min", "OK")] * 2
    assert not (host / ".schedule").exists(), "no run-due state, no lock: the orchestrator keeps the time"

    unknown = schedule_run(schedules, host, "health-hourly")
    assert (unknown.returncode, unknown.stdout) == (3, "")
    assert unknown.stderr.strip() == "aias-runbooks: error: no entry 'health-hourly' in the schedules file; valid: " \
        "health-5min, db-hourly"


def test_a_change_is_told_once_whichever_host_runs_the_entry(sandbox, scenario, tmp_path):
    """Two hosts (their own report roots) run the entry into one archive. Host A never saw CRITICAL itself, yet
    tells nothing when it finds CRITICAL again: the previous status is the catalogue's, so B's page is the only
    one; B then tells the recovery once."""
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    archive = tmp_path / "archive"
    schedules = write(tmp_path, oncall, archive=str(archive))
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"

    ok = schedule_run(schedules, host_a)
    assert (ok.returncode, ok.stderr) == (0, ""), ok.stdout + ok.stderr
    assert emails_to(sandbox, oncall) == [], "a first run that is OK tells nobody"

    scenario("api-down")
    down = schedule_run(schedules, host_b)
    assert (down.returncode, down.stderr) == (2, ""), "exit code: the run's (CRITICAL)\n" + down.stdout + down.stderr
    [told] = emails_to(sandbox, oncall)
    assert told["subject"] == "health-5min: health-check on sandbox went OK -> CRITICAL: API_DOWN"
    assert f"Report: {archive}/" in told["text"]

    still = schedule_run(schedules, host_a)
    assert (still.returncode, still.stderr) == (2, ""), still.stdout + still.stderr
    assert len(emails_to(sandbox, oncall)) == 1, "CRITICAL after B's CRITICAL: no second page from host A"

    scenario("healthy")
    back = schedule_run(schedules, host_b)
    assert (back.returncode, back.stderr) == (0, ""), back.stdout + back.stderr
    subjects = [e["subject"] for e in emails_to(sandbox, oncall)]
    assert subjects[1:] == ["health-5min: health-check on sandbox recovered, CRITICAL -> OK"]
    assert [r["status"] for r in runs(archive)] == ["OK", "CRITICAL", "CRITICAL", "OK"]


def test_notify_tells_the_change_of_a_run_filed_by_an_orchestrator(sandbox, scenario, tmp_path):
    """As an Airflow task files it (`run ... --entry NAME`) and its callback tells it: a change once, the same status
    nothing, a run it does not know or of another entry one line and exit 3."""
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    archive = tmp_path / "archive"
    schedules = write(tmp_path, oncall, archive=str(archive))

    def task(entry: str = "health-5min") -> str:
        result = cli("run", "health-check", "-p", "samples=10", "-p", "interval_ms=0", "--entry", entry,
                     "--archive", str(archive), "--output", str(tmp_path / "worker"))
        assert result.returncode in (0, 2), result.stdout + result.stderr
        return runs(archive)[-1]["run_id"]

    def notify(run_id: str):
        return cli("schedule", "notify", "health-5min", "--run-id", run_id, "--schedules", str(schedules))

    first = task()
    quiet = notify(first)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert quiet.stdout.strip() == f"health-5min: OK, no change to tell (run {first}; before it: none)"
    scenario("api-down")
    down = task()
    told = notify(down)
    assert (told.returncode, told.stderr) == (0, ""), told.stderr
    assert told.stdout.strip() == f"health-5min: email told OK -> CRITICAL (run {down})"
    assert [e["subject"] for e in emails_to(sandbox, oncall)] == [
        "health-5min: health-check on sandbox went OK -> CRITICAL: API_DOWN"]

    missing = notify("20261207-000000-abcd")
    assert (missing.returncode, missing.stdout) == (3, "")
    assert f"run '20261207-000000-abcd' is not in the catalogue of {archive}" in missing.stderr
    other = notify(task("health-manual"))
    assert (other.returncode, other.stdout) == (3, "")
    assert "was filed for entry 'health-manual', not 'health-5min'" in other.stderr
    assert len(emails_to(sandbox, oncall)) == 1


def test_runs_in_a_bucket_are_judged_and_told_from_the_bucket(sandbox, scenario, s3_archive, tmp_path):
    """The entry's archive: an S3 bucket (moto, reached through s3fs as a real one): the change is judged from the
    bucket's catalogue, the message names the report's s3:// URL and its top finding read from the bucket."""
    oncall = f"oncall-{secrets.token_hex(4)}@example.com"
    schedules = write(tmp_path, oncall, archive=s3_archive)
    assert schedule_run(schedules, tmp_path / "host-a").returncode == 0
    scenario("api-down")
    down = schedule_run(schedules, tmp_path / "host-b")
    assert (down.returncode, down.stderr) == (2, ""), down.stdout + down.stderr
    assert f"report: {s3_archive}/" in down.stdout
    [told] = emails_to(sandbox, oncall)
    lines = told["text"].splitlines()
    assert lines[0] == "health-5min: health-check on sandbox went OK -> CRITICAL: API_DOWN"
    assert any(line.startswith("- CRITICAL API_DOWN: ") for line in lines), "the top finding, from the bucket"
    assert lines[-1].startswith(f"Report: {s3_archive}/") and lines[-1].endswith("/report.html")
    assert [(r["entry"], r["status"]) for r in runs(s3_archive)] == [("health-5min", "OK"), ("health-5min", "CRITICAL")]


def test_run_due_files_each_run_with_its_entry_into_its_archive(sandbox, tmp_path):
    schedules, archive = write(tmp_path, "oncall@example.com"), tmp_path / "archive"
    result = cli("schedule", "run-due", "--schedules", str(schedules), "--output", str(tmp_path / "host"),
                 "--now", "2026-11-26T20:00:10Z", "--archive", str(archive))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted((r["entry"], r["runbook"], r["incident"]) for r in runs(archive)) == [
        ("db-hourly", "database-health", "INC-9"), ("health-5min", "health-check", None)]


def test_a_stopped_schedule_run_stops_its_run_which_still_files_its_report(sandbox, tmp_path):
    """SIGTERM, as Kubernetes deletes a pod or systemd stops a unit: the run stops and files the WARNING it had
    recorded, under its entry; the exit code is the run's."""
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - {name: stuck, cron: '* * * * *', runbook: stuck-check, environment: sandbox}\n")
    host, archive = tmp_path / "host", tmp_path / "archive"
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}
    proc = subprocess.Popen([*CLI, "schedule", "run", "stuck", "--schedules", str(path), "--output", str(host),
                             "--archive", str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    hanging = lambda: any("CHECK_BEFORE_HANG" in p.read_text() for p in host.glob(".work/*/findings.jsonl"))  # noqa: E731
    wait_for(lambda: hanging() or proc.poll() is not None, 120, "stuck-check to record its finding and hang")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stdout + stderr
    assert stdout.startswith("stuck: WARNING") and f"report: {archive}/" in stdout, stdout
    [filed] = runs(archive)
    assert (filed["entry"], filed["status"]) == ("stuck", "WARNING") and "interrupted" in filed["error"]


def test_paging_judged_from_the_catalogue_passes_over_an_unknown_that_does_not_page(sandbox, tmp_path):
    """WARNING, then UNKNOWN (not paging: `pagerduty: true`), then CRITICAL pages: the incident was never open, so
    the UNKNOWN before the CRITICAL is no open incident; WARNING after it resolves it once. One entry, each run from
    another host, its runbook changed between runs (a fixture per status)."""
    from aias_runbooks import notify
    name = f"paged-{secrets.token_hex(3)}"
    archive = tmp_path / "archive"
    env = os.environ | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)}

    def run(step: int, runbook: str, parameters: str = "{}") -> subprocess.CompletedProcess:
        path = tmp_path / "schedules.yaml"
        path.write_text(f"schedules:\n  - {{name: {name}, cron: '*/5 * * * *', runbook: {runbook}, environment: "
                        f"sandbox, parameters: {parameters}, notify: {{pagerduty: true}}, archive: '{archive}'}}\n")
        return cli("schedule", "run", name, "--schedules", str(path), "--output", str(tmp_path / f"host-{step}"),
                   env=env)

    def events() -> list[str]:
        state = json.loads((sandbox / "services.json").read_text())
        key = notify.dedup_key("sandbox", name)
        return [e["event_action"] for e in state.get("pagerduty_events", []) if e["dedup_key"] == key]

    assert run(1, "crashing-check").returncode == 1 and events() == []
    assert run(2, "paging-check", "{crash: 1}").returncode == 3 and events() == []
    critical = run(3, "paging-check")
    assert critical.returncode == 2 and "notification" not in critical.stderr, critical.stdout + critical.stderr
    assert events() == ["trigger"]
    assert run(4, "paging-check").returncode == 2 and events() == ["trigger"], "still open: nothing more"
    assert run(5, "crashing-check").returncode == 1 and events() == ["trigger", "resolve"]
