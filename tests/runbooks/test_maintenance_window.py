"""maintenance-window: the window computed across daylight saving and year ends (no sandbox), and the runbook
through the real CLI on the session's sandbox: healthy is a go, a stale backup a no-go naming it, post-checks pass on
healthy, and a malformed `now` is refused before any kernel starts."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import pytest

from aias_runbooks import maintenance
from aias_runbooks.checks import maintenance as checks
from aias_runbooks.findings import Finding, Severity
from aias_runbooks.maintenance import Schedule, last_window, next_window, window_in
from aias_runbooks.runner import catalog
from aias_runbooks.sources import backups
from aias_runbooks.thresholds import load_thresholds

from ..helpers import finding, refuse

RUNBOOK = "maintenance-window"
SCHEDULE = Schedule.of(load_thresholds())
NOW = "2026-11-26T12:00:00Z"       # ten days before the December window: the notice is not due yet


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def utc(window: maintenance.Window) -> tuple[str, str]:
    return f"{window.start_utc:%Y-%m-%d %H:%M}", f"{window.end_utc:%Y-%m-%d %H:%M}"


def test_the_schedule_is_the_playbooks_and_lives_in_thresholds():
    assert SCHEDULE.describe() == "the first Sunday of every month, 02:00-04:00 America/Toronto local time"
    assert SCHEDULE.notice_hours == 48


def test_a_normal_winter_month():
    window = next_window(at("2026-11-26T20:00:00Z"), SCHEDULE)
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2026-12-06 02:00 EST" and window.end.hour == 4
    assert utc(window) == ("2026-12-06 07:00", "2026-12-06 09:00") and window.hours == 2 and not window.note
    assert f"{window.notice_due:%Y-%m-%d %H:%M}" == "2026-12-04 07:00"


def test_a_summer_month_is_two_to_four_daylight_time():
    window = window_in(2026, 7, SCHEDULE)
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2026-07-05 02:00 EDT"
    assert utc(window) == ("2026-07-05 06:00", "2026-07-05 08:00")


def test_the_first_sunday_of_march_is_never_the_dst_start_sunday():
    """Daylight saving starts on the second Sunday of March: March 8 2026, March 14 2027. The first Sundays (March 1
    2026, March 7 2027) are still standard time, so the playbook's window never meets the gap."""
    assert [f"{window_in(y, 3, SCHEDULE).start:%Y-%m-%d %H:%M %Z}" for y in (2026, 2027)] == [
        "2026-03-01 02:00 EST", "2027-03-07 02:00 EST"]


def test_a_start_in_the_spring_forward_gap_starts_after_it_and_keeps_the_announced_end():
    """With a window on the DST-start Sunday (a second-Sunday rule; March 8 2026), 02:00 does not exist in Toronto:
    the window starts at 03:00 EDT (07:00 UTC, the instant 02:00 EST would have been), ends at 04:00 EDT as
    announced, and is one hour long; the customer notice says so."""
    window = window_in(2026, 3, dataclasses.replace(SCHEDULE, nth=2))
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2026-03-08 03:00 EDT"
    assert f"{window.end:%H:%M %Z}" == "04:00 EDT" and utc(window) == ("2026-03-08 07:00", "2026-03-08 08:00")
    assert window.hours == 1 and "does not exist" in window.note
    assert "daylight saving time starts that night" in maintenance.customer_notice(window)


def test_the_dst_end_sunday_starts_at_two_standard_time():
    """Nov 1 2026: clocks fall back at 02:00 EDT to 01:00 EST, so 01:00-02:00 repeats and 02:00 is unambiguous."""
    window = next_window(at("2026-10-31T12:00:00Z"), SCHEDULE)
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2026-11-01 02:00 EST" and f"{window.end:%H:%M %Z}" == "04:00 EST"
    assert utc(window) == ("2026-11-01 07:00", "2026-11-01 09:00") and window.hours == 2 and not window.note
    # 48 real hours before: 07:00 UTC on Oct 30, which is 03:00 daylight time there
    assert f"{window.notice_due.astimezone(window.start.tzinfo):%Y-%m-%d %H:%M %Z}" == "2026-10-30 03:00 EDT"


def test_a_start_in_the_repeated_hour_is_its_first_occurrence():
    window = window_in(2026, 11, dataclasses.replace(SCHEDULE, start=time(1, 0)))
    assert f"{window.start:%H:%M %Z}" == "01:00 EDT" and window.hours == 3 and "occurs twice" in window.note


def test_now_inside_a_window_is_that_window_and_its_end_is_over():
    window = next_window(at("2026-11-01T08:30:00Z"), SCHEDULE)
    assert utc(window)[0] == "2026-11-01 07:00" and window.state(at("2026-11-01T08:30:00Z")) == "in progress"
    assert utc(next_window(at("2026-11-01T09:00:00Z"), SCHEDULE))[0] == "2026-12-06 07:00"
    assert utc(last_window(at("2026-11-01T09:30:00Z"), SCHEDULE))[0] == "2026-11-01 07:00"
    assert utc(last_window(at("2026-11-01T06:59:00Z"), SCHEDULE))[0] == "2026-10-04 06:00"


def test_december_rolls_over_to_january():
    window = next_window(at("2026-12-06T09:00:00Z"), SCHEDULE)
    assert f"{window.start:%Y-%m-%d %H:%M %Z}" == "2027-01-03 02:00 EST"
    assert utc(last_window(at("2027-01-01T00:00:00-05:00"), SCHEDULE))[0] == "2026-12-06 07:00"


def test_the_notice_is_due_from_48_hours_before_until_the_window_starts():
    window = next_window(at(NOW), SCHEDULE)
    graded = {when: checks.notice(window, at(when), SCHEDULE) for when in
              ["2026-12-04T06:59:00Z", "2026-12-04T07:00:00Z", "2026-12-06T06:59:00Z", "2026-12-06T07:30:00Z"]}
    assert [(f.code, f.severity.value) for f in graded.values()] == [
        ("MAINTENANCE_NOTICE_OK", "OK"), ("MAINTENANCE_NOTICE_DUE", "WARNING"), ("MAINTENANCE_NOTICE_DUE", "WARNING"),
        ("MAINTENANCE_NOTICE_OK", "OK")]
    assert "2026-12-04 07:00 UTC" in graded["2026-12-04T06:59:00Z"].title


def test_go_no_go_is_blocked_by_any_critical_finding():
    warn = Finding("MAINTENANCE_OPEN_INCIDENT", Severity.WARNING, "open")
    assert checks.readiness([warn]).code == "MAINTENANCE_READY"
    assert "MAINTENANCE_OPEN_INCIDENT" in checks.readiness([warn]).title
    stop = checks.readiness([warn, Finding("MAINTENANCE_BACKUP_MISSING", Severity.CRITICAL, "none")])
    assert (stop.code, stop.severity, stop.evidence["blocking"]) == ("MAINTENANCE_NOT_READY", Severity.CRITICAL,
                                                                    ["MAINTENANCE_BACKUP_MISSING"])


def test_before_is_the_next_window_and_after_the_latest_that_started():
    between = at(NOW)     # November's window is over, December's ahead
    assert utc(maintenance.window_of("pre", between, SCHEDULE)) == ("2026-12-06 07:00", "2026-12-06 09:00")
    assert utc(maintenance.window_of("post", between, SCHEDULE)) == ("2026-11-01 07:00", "2026-11-01 09:00")
    during = at("2026-12-06T08:00:00Z")
    assert maintenance.window_of("pre", during, SCHEDULE) == maintenance.window_of("post", during, SCHEDULE)


def backups_listed(folder, *ages_hours: float) -> pd.DataFrame:
    """A backup folder with complete backups of those ages, listed as the runbook lists it."""
    now = at(NOW)
    for i, age in enumerate(ages_hours):
        (folder / f"b{i}.dump").write_bytes(b"dump")
        created = (now - timedelta(hours=age)).isoformat()
        (folder / f"b{i}.json").write_text(json.dumps({"created_at": created, "file": f"b{i}.dump"}))
    return backups.listing(folder, now)


def test_the_newest_backup_is_restored_only_when_asked_recent_and_not_judged_already(tmp_path):
    """A stale backup is not restored (it is a no-go whatever it restores), nor one a database-backup run judged."""
    (fresh := tmp_path / "fresh").mkdir()
    (stale := tmp_path / "stale").mkdir()
    recent, old = backups_listed(fresh, 2), backups_listed(stale, 30)
    thresholds, newest = load_thresholds(), {"path": fresh / "b0.dump"}
    assert checks.worth_verifying(True, newest, None, recent, thresholds)
    assert not checks.worth_verifying(False, newest, None, recent, thresholds)
    assert not checks.worth_verifying(True, None, None, backups_listed(tmp_path), thresholds)
    assert not checks.worth_verifying(True, newest, {"code": "BACKUP_VERIFIED"}, recent, thresholds)
    assert not checks.worth_verifying(True, newest, None, old, thresholds)


def test_the_all_clear_is_drafted_only_after_a_window_whose_checks_passed():
    window = window_in(2026, 12, SCHEDULE)
    assert maintenance.draft("pre", window, Severity.CRITICAL).startswith("**Subject: Scheduled maintenance on")
    assert maintenance.draft("post", window, Severity.OK).startswith("**Subject: Scheduled maintenance complete")
    for status in (Severity.WARNING, Severity.UNKNOWN, Severity.CRITICAL):
        assert maintenance.draft("post", window, status).startswith("*No all-clear yet")


def test_healthy_pre_is_a_go_with_the_window_and_the_notice(run):
    result = run(RUNBOOK, "-p", f"now={NOW}")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert result.codes == {"MAINTENANCE_NOTICE_OK": "OK", "MAINTENANCE_BACKUP_OK": "OK",
                            "MAINTENANCE_NO_MIGRATIONS": "OK", "MAINTENANCE_NO_OPEN_INCIDENT": "OK",
                            "MAINTENANCE_READY": "OK"}
    notice = finding(result, "MAINTENANCE_NOTICE_OK")["evidence"]
    assert notice["window_start"] == "2026-12-06 02:00 EST (Sun)"
    assert notice["window_start_utc"] == "2026-12-06 07:00 UTC"
    assert notice["notice_due_utc"] == "2026-12-04 07:00 UTC"
    assert finding(result, "MAINTENANCE_BACKUP_OK")["evidence"]["verification"] == "BACKUP_VERIFIED"
    report = (result.folder / "report.html").read_text()
    assert "Scheduled maintenance on Sunday, December 6, 2026" in report
    assert "2026-12-06 07:00 UTC to 2026-12-06 09:00 UTC" in report
    assert "127.0.0.1" not in report.split("Scheduled maintenance on", 1)[1].split("</div>", 1)[0]


def test_a_stale_backup_is_a_no_go_naming_it(run, scenario):
    scenario("backup-stale")
    result = run(RUNBOOK, "-p", f"now={NOW}")
    assert result.proc.returncode == 2, result.verdict["findings"]
    missing = finding(result, "MAINTENANCE_BACKUP_MISSING")
    newest = missing["evidence"]["newest"]
    assert missing["severity"] == "CRITICAL" and newest in missing["title"]
    assert missing["evidence"]["newest_age_hours"] > 71
    ready = finding(result, "MAINTENANCE_NOT_READY")
    assert ready["severity"] == "CRITICAL" and ready["evidence"]["blocking"] == ["MAINTENANCE_BACKUP_MISSING"]
    assert newest in ready["title"]
    assert "MAINTENANCE_READY" not in result.codes


def test_healthy_post_is_all_clear(quiet, run):
    result = run(RUNBOOK, "-p", "phase=post", "-p", "now=2026-12-06T09:30:00Z")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert result.codes == {"API_HEALTHY": "OK", "API_LATENCY_OK": "OK", "ERROR_RATE_OK": "OK",
                            "MAINTENANCE_POST_OK": "OK"}
    assert finding(result, "MAINTENANCE_POST_OK")["evidence"]["window_start_utc"] == "2026-12-06 07:00 UTC"
    assert "Scheduled maintenance complete (December 6, 2026)" in (result.folder / "report.html").read_text()


@pytest.mark.parametrize(("value", "said"), [
    ("2026-12-04", "must be an ISO 8601 timestamp with a UTC offset"),             # a date, no time
    ("2026-12-04T12:00:00", "must be an ISO 8601 timestamp with a UTC offset"),    # no offset: which zone?
    ("next sunday", "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-11-01T07:00:00Z, got 'next sunday'"),
    ("2026-02-30T12:00:00Z", "must be an ISO 8601 timestamp"),
])
def test_a_malformed_now_is_refused_before_any_kernel_starts(tmp_path, value, said):
    result = refuse(tmp_path, RUNBOOK, "-p", f"now={value}")
    assert result.returncode == 3 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aias-runbooks: error: maintenance-window: parameter 'now'")
    assert said in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-sandbox"]


def test_an_unknown_phase_is_refused(tmp_path):
    result = refuse(tmp_path, RUNBOOK, "-p", "phase=during")
    assert result.returncode == 3
    assert result.stderr.strip().endswith("parameter 'phase' must be one of pre, post, got 'during'")


def test_a_timestamp_with_an_offset_is_the_same_instant():
    assert maintenance.clock("2026-12-06T02:00:00-05:00") == datetime(2026, 12, 6, 7, tzinfo=timezone.utc)


def file_runs(output, *runs: tuple[str, str, str, str]) -> None:
    """(runbook, incident, status, started_at) runs filed in the archive, as the runner files them."""
    for n, (runbook, incident, status, started) in enumerate(runs):
        catalog.file_run(output, {"run_id": f"r{n}-{secrets.token_hex(2)}", "runbook": runbook, "env": "sandbox",
                                  "incident": incident or None, "status": status, "started_at": started,
                                  "summary": f"{status}: ..."})


def test_an_incident_is_open_while_its_latest_run_of_a_runbook_is_not_ok(tmp_path):
    file_runs(tmp_path, ("health-check", "INC-1", "CRITICAL", "2026-11-26T08:00:00+00:00"),
              ("health-check", "INC-1", "OK", "2026-11-26T09:00:00+00:00"),          # resolved
              ("high-error-rate", "INC-2", "OK", "2026-11-26T08:00:00+00:00"),
              ("high-error-rate", "INC-2", "WARNING", "2026-11-26T10:00:00+00:00"),  # worse again: open
              ("health-check", "INC-3", "CRITICAL", "2026-11-25T11:00:00+00:00"),    # over 24 h ago
              ("health-check", "", "CRITICAL", "2026-11-26T10:00:00+00:00"),         # no incident id
              ("maintenance-window", "INC-4", "CRITICAL", "2026-11-26T10:00:00+00:00"))   # this runbook itself
    runs = maintenance.incident_runs(tmp_path, at(NOW), exclude=RUNBOOK)
    assert sorted(zip(runs["incident"], runs["open"], strict=True)) == [("INC-1", False), ("INC-2", True)]
    pages = pd.DataFrame([{"service": "stripe", "indicator": "none", "incidents": "", "error": None}])
    found = checks.incidents(runs, pages)
    assert (found.code, found.severity) == ("MAINTENANCE_OPEN_INCIDENT", Severity.WARNING)
    assert "INC-2" in found.title and "INC-1" not in found.title


def test_an_open_incident_in_the_archive_is_a_warning_to_weigh(run, tmp_path):
    """The archive is read at the current time, whatever `now` says (it places the schedule only)."""
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    file_runs(tmp_path / "output", ("high-error-rate", "INC-7", "CRITICAL", started.isoformat()))
    result = run(RUNBOOK, "-p", f"now={NOW}", "-p", "verify_backup=false")
    assert result.proc.returncode == 1, result.verdict["findings"]
    assert "INC-7" in finding(result, "MAINTENANCE_OPEN_INCIDENT")["title"]
    assert finding(result, "MAINTENANCE_READY")["evidence"]["to_weigh"] == ["MAINTENANCE_BACKUP_UNVERIFIED",
                                                                            "MAINTENANCE_OPEN_INCIDENT"]


def test_pending_migrations_are_listed_as_the_windows_work(run, scenario):
    scenario("migration-drift")
    result = run(RUNBOOK, "-p", f"now={NOW}", "-p", "verify_backup=false")
    planned = finding(result, "MAINTENANCE_MIGRATIONS_PLANNED")
    assert planned["severity"] == "OK" and planned["evidence"]["pending"] == ["20250201000000"]
    assert "20250201000000" in planned["title"]


def test_post_ok_needs_both_checks_judged_and_nothing_else_wrong():
    window = window_in(2026, 12, SCHEDULE)
    passed = [Finding(code, Severity.OK, "") for code in ("API_HEALTHY", "API_LATENCY_OK", "ERROR_RATE_OK")]
    assert [f.code for f in checks.post(passed, window)] == ["MAINTENANCE_POST_OK"]
    assert checks.post(passed[:2], window) == []        # the error rate could not be read
    assert checks.post([*passed, Finding("DB_UNREACHABLE", Severity.CRITICAL, "")], window) == []


def test_post_with_the_api_down_is_critical_and_sends_no_all_clear(run, scenario):
    scenario("api-down")
    result = run(RUNBOOK, "-p", "phase=post", "-p", "now=2026-12-06T09:30:00Z", "-p", "samples=5")
    assert result.proc.returncode == 2, result.verdict["findings"]
    assert result.codes["API_DOWN"] == "CRITICAL" and "MAINTENANCE_POST_OK" not in result.codes
    report = (result.folder / "report.html").read_text()
    assert "No all-clear yet" in report and "Scheduled maintenance complete" not in report


def test_a_verification_by_database_backup_in_the_archive_counts(run):
    verified = run("database-backup")
    assert verified.codes.get("BACKUP_VERIFIED") == "OK", verified.verdict["findings"]
    result = run(RUNBOOK, "-p", f"now={NOW}", "-p", "verify_backup=false")
    assert result.proc.returncode == 0, result.verdict["findings"]
    evidence = finding(result, "MAINTENANCE_BACKUP_OK")["evidence"]
    assert evidence["verified_in_run"] == verified.verdict["run_id"]
    assert evidence["newest"] == finding(verified, "BACKUP_VERIFIED")["evidence"]["backup"]


def test_a_backup_changed_since_its_verification_does_not_count(tmp_path):
    dump = tmp_path / "sandbox-20261126-100000Z-abcd.dump"
    dump.write_bytes(b"altered after it was verified")
    run = tmp_path / "2026-11-26" / "120000_database-backup_sandbox"
    run.mkdir(parents=True)
    (run / "verdict.json").write_text(json.dumps({"findings": [
        {"code": "BACKUP_VERIFIED", "severity": "OK", "title": "intact", "evidence": {"backup": dump.name}}]}))
    catalog.file_run(tmp_path, {"run_id": "r1", "runbook": "database-backup", "env": "sandbox", "started_at": NOW,
                                "report_dir": run.relative_to(tmp_path).as_posix()})
    meta = {"path": dump, "sha256": "0" * 64}
    found = maintenance.earlier_verification(tmp_path, meta, "sandbox")
    assert found["code"] == "BACKUP_VERIFY_FAILED" and "changed since" in found["title"] and found["run_id"] == "r1"
    assert maintenance.earlier_verification(tmp_path, meta, "production") is None
