"""Every scenario is observable the moment `sandbox up --scenario` returns: its runbooks (its `expected`), run
at once with their default criteria, report its finding codes and a non-zero exit code. No waiting in the test:
a fault helper signals ready only once the fault is past the thresholds the runbooks apply.

The list is derived from scenarios.SCENARIOS and the notebooks present, so a new scenario is covered as soon as a
runbook it names exists (until then it is skipped).
"""

from __future__ import annotations

import pytest

from aias_runbooks.catalogue import slugs as runbook_slugs
from aias_runbooks.runner.parameterize import load_runbook
from aias_runbooks.sandbox.scenarios import SCENARIOS

# Small samples keep the runs cheap without changing any criterion (health-check's P95 needs 10 samples;
# database-connection-errors keeps its default statements window: slow-queries needs 3 calls in it).
CHEAP = {"samples": 10, "interval_ms": 10, "latency_samples": 10, "top_tables": 5}
def _cases() -> list:
    present = set(runbook_slugs())
    cases = []
    for name, scenario in SCENARIOS.items():
        if not scenario.expected:
            continue
        expected = scenario.expected
        missing = sorted(set(expected) - present)
        marks = [pytest.mark.skip(reason=f"runbook(s) {', '.join(missing)} not in notebooks/ yet")] if missing else []
        cases.append(pytest.param(name, expected, id=name, marks=marks))
    return cases


def test_expectations_name_codes_and_severities():
    """Each scenario's expected findings: upper-case codes, each a severity that pages (None: either one)."""
    for name, scenario in SCENARIOS.items():
        for runbook, codes in scenario.expected.items():
            assert runbook and codes, f"{name}: {runbook!r} expects no finding code"
            assert all(code.isupper() and severity in (None, "WARNING", "CRITICAL")
                       for code, severity in codes.items()), f"{name}: {runbook}: {codes}"


@pytest.mark.parametrize(("name", "expected"), _cases())
def test_scenario_is_diagnosed_at_once(run, scenario, name, expected):
    scenario(name)   # and straight on: no waiting for the fault to grow past a threshold
    for runbook, codes in expected.items():
        declared = load_runbook(runbook).parameters
        params = [arg for key, value in CHEAP.items() if key in declared for arg in ("-p", f"{key}={value}")]
        result = run(runbook, *params)
        context = f"{name} -> {runbook}: {result.codes}\n{result.proc.stdout}\n{result.proc.stderr}"
        assert set(codes) <= set(result.codes), context
        for code, severity in codes.items():
            assert result.codes[code] in ({severity} if severity else {"WARNING", "CRITICAL"}), context
        assert result.proc.returncode != 0, context
