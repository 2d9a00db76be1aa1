"""Every scenario is observable the moment `sandbox up --scenario` returns: its runbooks (its `diagnosed_by`), run
at once with their default criteria, report its finding codes and a non-zero exit code. No waiting in the test:
a fault helper signals ready only once the fault is past the thresholds the runbooks apply.

The list is derived from scenarios.SCENARIOS and the notebooks present, so a new scenario is covered as soon as a
runbook it names exists (until then it is skipped).
"""

from __future__ import annotations

import re

import pytest

from aias_runbooks.runner.parameterize import load_runbook, runbook_slugs
from aias_runbooks.sandbox.scenarios import SCENARIOS

# Small samples keep the runs cheap without changing any criterion (health-check's P95 needs 10 samples;
# database-connection-errors keeps its default statements window: slow-queries needs 3 calls in it).
CHEAP = {"samples": 10, "interval_ms": 10, "latency_samples": 10, "top_tables": 5}
SEVERITIES = {"OK", "WARNING", "CRITICAL", "UNKNOWN"}
# A finding code, optionally followed by a parenthesised note: "API_UNHEALTHY (CRITICAL)" names its severity,
# "DB_BLOCKING_LOCKS (idle root blocker: terminate)" only describes it.
_CODE = re.compile(r"\b([A-Z][A-Z0-9_]{2,})\b(?:\s*\(([^)]*)\))?")


def diagnosed_by(text: str) -> dict[str, dict[str, str | None]]:
    """'runbook: CODE (note), CODE; runbook: CODE' -> {runbook: {code: severity named in the note, or None}}."""
    expected: dict[str, dict[str, str | None]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        runbook, _, codes = part.partition(":")
        found = {m.group(1): (m.group(2).strip() if m.group(2) and m.group(2).strip() in SEVERITIES else None)
                 for m in _CODE.finditer(codes)}
        assert runbook.strip() and found, f"diagnosed_by part {part!r} names no runbook and finding code"
        expected.setdefault(runbook.strip(), {}).update(found)
    return expected


def _cases() -> list:
    present = set(runbook_slugs())
    cases = []
    for name, scenario in SCENARIOS.items():
        if not scenario.diagnosed_by:
            continue
        expected = diagnosed_by(scenario.diagnosed_by)
        missing = sorted(set(expected) - present)
        marks = [pytest.mark.skip(reason=f"runbook(s) {', '.join(missing)} not in notebooks/ yet")] if missing else []
        cases.append(pytest.param(name, expected, id=name, marks=marks))
    return cases


def test_diagnosed_by_is_parsed():
    assert diagnosed_by("database-connection-errors: DB_SLOW_QUERY; database-health: DB_SEQ_SCAN_HOT_TABLE") == {
        "database-connection-errors": {"DB_SLOW_QUERY": None}, "database-health": {"DB_SEQ_SCAN_HOT_TABLE": None}}
    assert diagnosed_by("health-check: API_UNHEALTHY (CRITICAL)") == {"health-check": {"API_UNHEALTHY": "CRITICAL"}}
    assert diagnosed_by("database-connection-errors: DB_BLOCKING_LOCKS (idle root blocker: terminate)") == {
        "database-connection-errors": {"DB_BLOCKING_LOCKS": None}}
    assert diagnosed_by("database-health: RLS_DISABLED, RLS_NO_POLICY") == {
        "database-health": {"RLS_DISABLED": None, "RLS_NO_POLICY": None}}


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
