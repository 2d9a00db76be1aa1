"""Every external call has a total deadline, not a per-read timeout: a target that sends its answer a byte at a time
(a real TCP server here, one byte every half second, forever) is a finding naming it, in seconds, and never holds a
run or `schedule run-due`; a run section calling a slow target many times ends within its budget, with a verdict."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from aias_runbooks.sources import http

from ..helpers import Target, cli, finding, free_port_base, runs, write_schedule

SAFETY_NET_S = 240   # a run that hangs fails the test here (before the fix it hung until the cell timeout, or forever)


@pytest.fixture
def dripping() -> Iterator[Target]:
    target = Target("drip", 0.5)
    yield target
    target.close()


def test_a_request_to_a_dripping_target_ends_at_its_deadline_naming_it(dripping):
    with pytest.raises(http.TooSlow) as caught:
        http.request("GET", f"{dripping.url}/api/healthz", 1.5)
    assert str(caught.value) == f"{dripping.url}/api/healthz: no complete answer within 1.5 s"
    assert caught.value.seconds == 1.5


def test_a_notification_to_a_dripping_webhook_does_not_hold_run_due(sandbox, dripping, tmp_path):
    """The API is down (refused at once: API_DOWN, a change of status to tell) and the Slack webhook drips: the
    delivery gives up at its 5 s deadline, run-due exits with the run's code and says so, and the next slot runs
    (before, run-due was held on the notification, and every later slot was silently skipped)."""
    schedules = write_schedule(tmp_path, "{slack: true}")
    output = tmp_path / "output"
    env = os.environ | {"AIAS_SANDBOX_API_URL": f"http://127.0.0.1:{free_port_base()}",
                        "AIAS_SANDBOX_SLACK_WEBHOOK_URL": f"{dripping.url}/services/T0/B0/{secrets.token_hex(12)}"}
    said = ("  health-5min: slack notification (OK -> CRITICAL) not delivered: the Slack webhook did not answer "
            "within 5 s; retried at the next run")
    for now in ("2026-11-26T20:00:10Z", "2026-11-26T20:05:10Z"):
        due = cli("schedule", "run-due", "--schedules", str(schedules), "--output", str(output), "--now", now,
                  timeout=SAFETY_NET_S, env=env)
        assert due.returncode == 2 and "health-5min (" in due.stdout, due.stdout + due.stderr
        assert due.stderr.splitlines() == [said]
    assert [r["exit_code"] for r in runs(output)] == [2, 2], "the next slot ran too"


def test_a_section_calling_a_slow_target_many_times_ends_within_its_budget(run):
    """A healthy API answering each request in 0.6 s, asked 200 times (2 minutes) with a 20 s cell timeout: the
    probe stops when the section's budget (0.8 of the cell timeout) cannot hold another request, and the run
    reaches its verdict on the samples it has, saying so, instead of the cell timeout ending it (RUNBOOK_ERROR)."""
    slow = Target("slow", 0.6)
    try:
        result = run("health-check", "-p", "samples=200", "-p", "interval_ms=0", "-p", "timeout_s=2",
                     "--cell-timeout", "20", env=os.environ | {"AIAS_SANDBOX_API_URL": slow.url})
    finally:
        slow.close()
    assert "RUNBOOK_ERROR" not in result.codes and "API_HEALTHY" in result.codes, result.verdict["findings"]
    healthy = finding(result, "API_HEALTHY")
    assert "requests were sent: the run section's 16 s budget ran out" in healthy["title"]
    assert healthy["evidence"]["budget_s"] == 16 and healthy["evidence"]["samples"] < 200
    assert "API_LATENCY_P95_HIGH" in result.codes, "0.6 s answers, judged on the samples it has"
    assert result.proc.returncode in (1, 2) and result.proc.returncode == result.verdict["exit_code"]
