"""monitoring through the runner: quiet on a healthy platform and on a 1-minute error blip, each sustained breach
fires its own code (CRITICAL, exit 2) the moment its scenario is up, and a failed health check pages at once. The
rules themselves (the sustained window, the burn-rate pairs) are also checked on made-up minutes, without a sandbox."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from aias_runbooks.checks import monitoring
from aias_runbooks.thresholds import load_thresholds

from ..helpers import PROBLEMS, finding, forget_recent_failures


def minutes_of(errors: list[int], requests: int = 100) -> pd.DataFrame:
    """A series of len(errors) minutes ending now, `requests` a minute with those 5xx counts, everything else quiet."""
    end = pd.Timestamp.now(tz="UTC").floor("min")
    raw = pd.DataFrame({"minute": pd.date_range(end - pd.Timedelta(minutes=len(errors) - 1), end, freq="min"),
                        "requests": requests, "errors": errors, "response_p95_ms": 80.0, "db_samples": 12,
                        "db_p95_ms": 5.0, "deliveries": 0, "delivered": 0, "signups": 0, "signed_up": 0})
    return monitoring.series(raw, load_thresholds(), len(errors), now=end.to_pydatetime())


def error_rate_findings(errors: list[int]) -> list:
    thresholds = load_thresholds()
    metric = next(m for m in monitoring.metrics(thresholds) if m.code == "MONITOR_ERROR_RATE")
    return monitoring.check(minutes_of(errors), metric, thresholds, "sandbox")


def test_the_sustained_rule_needs_five_consecutive_minutes_over_the_line():
    assert error_rate_findings([0] * 50 + [40] + [0] * 9) == [], "a 1-minute blip"
    assert error_rate_findings([0] * 50 + [5] * 4 + [0] + [5] * 4 + [0]) == [], "two 4-minute runs"
    (fired,) = error_rate_findings([0] * 55 + [5] * 5)
    assert fired.severity.value == "CRITICAL" and fired.evidence["minutes_over"] == 5
    (recovered,) = error_rate_findings([0] * 20 + [5] * 10 + [0] * 30)
    assert recovered.severity.value == "WARNING" and "recovered" in recovered.title, "ended 30 minutes ago"


def test_burn_rate_pages_on_both_page_windows_and_names_a_pair_it_cannot_evaluate():
    thresholds = load_thresholds()
    burning = minutes_of([20] * 60)       # 20 % errors for an hour: burn rate 20 against a 1 % budget
    rates = monitoring.burn_rates(burning, thresholds, 0.99, 60)
    (page,) = monitoring.burn_rate(rates, 0.99, "sandbox")
    assert page.code == "MONITOR_BURN_RATE" and page.severity.value == "CRITICAL"
    assert "not evaluated: window_minutes=60 < 360" in page.evidence["ticket_pair"]
    assert monitoring.burn_rate(monitoring.burn_rates(minutes_of([20] * 55 + [0] * 5), thresholds, 0.99, 60),
                                0.99, "sandbox") == [], "the last 5 minutes are clean: the page stops"


def test_healthy_platform_is_quiet(run, sandbox):
    forget_recent_failures()   # earlier test files on this worker's sandbox simulated incidents
    result = run("monitoring")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert set(result.codes) == {"MONITOR_OK"}, result.verdict["findings"]
    said = finding(result, "MONITOR_OK")["evidence"]
    assert said["error_rate_judged_minutes"] > 0 and "not evaluated" in said["burn_ticket"]
    assert (result.folder / "report.html").is_file() and (result.folder / "notebook.ipynb").is_file()


def test_a_one_minute_error_blip_is_shown_but_does_not_fire(run, scenario):
    forget_recent_failures()
    scenario("error-blip")
    result = run("monitoring")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert "MONITOR_ERROR_RATE" not in result.codes and not PROBLEMS & set(result.codes.values())
    cells = json.loads((result.folder / "notebook.ipynb").read_text())["cells"]
    (table,) = [o["data"]["text/html"] for c in cells if c["id"] == "mo-09" for o in c["outputs"] if "data" in o]
    assert "<td>error_rate</td>" in "".join(table), "the blip minute is named in the table"


@pytest.mark.parametrize(("name", "code"), [
    ("error-spike-after-deploy", "MONITOR_ERROR_RATE"),
    ("slow-responses", "MONITOR_RESPONSE_P95"),
    ("slow-database", "MONITOR_DB_LATENCY"),
    ("webhook-endpoint-down", "MONITOR_WEBHOOK_FAILURES"),
    ("api-down", "MONITOR_HEALTH_CHECK_FAILED"),
])
def test_each_breach_fires_its_code_at_once(run, scenario, name, code):
    scenario(name)
    result = run("monitoring")
    assert result.codes.get(code) == "CRITICAL", result.verdict["findings"]
    assert result.proc.returncode == 2 and "MONITOR_OK" not in result.codes
    assert result.verdict["summary"].startswith("CRITICAL")
    assert "aias-runbooks run " in " ".join(finding(result, code)["next_steps"]), "names the runbook to run"
    assert (result.folder / "report.html").is_file() and (result.folder / "verdict.json").is_file()
