"""health-check when the API answers, but with errors: one availability finding, latency judged on successful
answers only, the most frequent error as the example, and an early stop."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from aias_runbooks.checks import health
from aias_runbooks.sources import api
from aias_runbooks.thresholds import load_thresholds


def test_api_whose_database_is_down_is_one_critical_finding_and_stops_early(run, scenario):
    scenario("api-db-down")   # the real sandbox API: every /api/healthz waits its database check, then 503
    result = run("health-check", "-p", "samples=20")
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert result.codes == {"API_UNHEALTHY": "CRITICAL"}, "no separate latency finding for error answers"
    finding = result.verdict["findings"][0]
    evidence = finding["evidence"]
    assert evidence["samples"] == 3 and evidence["failed"] == 3 and evidence["successful"] == 0, \
        "the probe stops after 3 failed answers in a row instead of sending all 20"
    assert evidence["statuses"] == ["503"]
    assert "503" in evidence["example"] and "unreachable" in evidence["example"]
    assert evidence["example_count"] == 3, "equal errors (their timestamps aside) are counted together"
    assert "stopped after 3 of 20" in finding["title"]
    assert "status update" in " ".join(finding["next_steps"])

    scenario("healthy")        # and it switches back
    healthy = run("health-check", "-p", "samples=10")
    assert healthy.proc.returncode == 0 and healthy.codes == {"API_HEALTHY": "OK", "API_LATENCY_OK": "OK"}


def _samples(rows: list[tuple[int | None, float, bool, str | None]], requested: int | None = None) -> pd.DataFrame:
    """Probe rows in the shape api.probe returns: (status, latency_ms, ok, error)."""
    now = datetime.now(timezone.utc)
    frame = pd.DataFrame([{"sample": i, "sent_at": now, "status": status, "answered": status is not None,
                           "latency_ms": latency, "ok": ok, "error": error}
                          for i, (status, latency, ok, error) in enumerate(rows, 1)],
                         columns=api.COLUMNS).astype({"status": "Int64"})
    frame.attrs.update(url="http://api/api/healthz", requested=requested or len(rows),
                       stopped_early=len(rows) < (requested or len(rows)))
    return frame


OK = (200, 40.0, True, None)
TIMEOUT_503 = (503, 2010.0, False, "HTTP 503, body: {'ok': False, 'db': 'unreachable: TimeoutError'}")
FIRST_500 = (500, 15.0, False, "HTTP 500, body: {'ok': False, 'error': 'internal error'}")


def test_the_example_is_the_most_frequent_error_not_the_first():
    thresholds = load_thresholds()
    samples = _samples([FIRST_500, OK, TIMEOUT_503, OK, TIMEOUT_503, OK, TIMEOUT_503, OK, OK, OK])
    [finding] = health.availability(samples, thresholds)
    assert finding.code == "API_UNHEALTHY" and finding.severity.value == "WARNING"   # intermittent
    assert finding.evidence["example"] == TIMEOUT_503[3] and finding.evidence["example_count"] == 3
    assert list(finding.evidence["errors"]) == [TIMEOUT_503[3], FIRST_500[3]], "most frequent first"


def test_latency_is_judged_on_successful_answers_only():
    thresholds = load_thresholds()
    # 12 fast successes and 8 slow 503s: the 503s alone would put P95 far past the 1000 ms alert
    samples = _samples([OK] * 12 + [TIMEOUT_503] * 8)
    [latency] = health.latency(samples, thresholds)
    assert latency.code == "API_LATENCY_OK" and latency.evidence["samples"] == 12
    assert latency.evidence["error_answers_excluded"] == 8
    # too few successes to judge: said so, never a latency CRITICAL
    [few] = health.latency(_samples([OK] * 3 + [TIMEOUT_503] * 17), thresholds)
    assert few.code == "API_LATENCY_UNKNOWN" and "API_UNHEALTHY" in few.title
    # no success at all: the availability finding says it all
    assert health.latency(_samples([TIMEOUT_503] * 3, requested=20), thresholds) == []


def test_errors_in_a_row_at_the_end_are_critical_even_after_successes():
    thresholds = load_thresholds()
    samples = _samples([OK, OK, TIMEOUT_503, TIMEOUT_503, TIMEOUT_503], requested=20)
    [finding] = health.availability(samples, thresholds)
    assert finding.code == "API_UNHEALTHY" and finding.severity.value == "CRITICAL"
    assert "last 3 in a row" in finding.title
