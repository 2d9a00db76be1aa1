"""What triage must name for each sandbox scenario, shared by test_triage.py and test_triage_scenarios.py (two
files: xdist runs them on two workers, each with its own sandbox)."""

from __future__ import annotations

from aias_runbooks.checks.triage import NEXT
from aias_runbooks.sandbox.scenarios import SCENARIOS

from ..helpers import forget_recent_failures

# Scenarios where triage must stay quiet (TRIAGE_ALL_CLEAR, exit 0), and why; every other scenario must be ranked
# to a runbook that diagnoses it.
QUIET = {
    "healthy": "nothing is wrong",
    "error-blip": "one minute of errors is not the playbook's alert (over 1 % for 5 minutes)",
    "rls-blocks-user": "one user's problem: no platform-wide signal; the notebook points to user-support",
    "paying-member-removed": "one user's membership: no platform-wide signal; user-support with their email names it",
}


def diagnosers(name: str) -> set[str]:
    """The runbooks a scenario expects to diagnose it (Scenario.expected), and the runbook each expected finding
    sends to (monitoring's MONITOR_RESPONSE_P95: health-check)."""
    said = SCENARIOS[name].expected
    return set(said) | {NEXT[code] for codes in said.values() for code in codes if code in NEXT}


def seen() -> list[str]:
    return sorted(n for n in SCENARIOS if n not in QUIET)


def check_ranking(run, scenario, name: str) -> None:
    """Triage on the scenario ranks first a runbook that diagnoses it, pages (exit 1 or 2) and says the command."""
    forget_recent_failures()
    scenario(name)
    result = run("triage")
    assert result.proc.returncode in (1, 2), result.proc.stdout + result.proc.stderr
    problems = [f for f in result.verdict["findings"] if f["severity"] != "OK"]
    top = min(problems, key=lambda f: f["evidence"].get("rank", 99))
    expected = diagnosers(name)
    assert top["evidence"]["next_runbook"] in expected, (name, expected, [(f["code"], f["evidence"].get(
        "next_runbook")) for f in problems])
    command = f"aias-runbooks run {top['evidence']['next_runbook']} --env sandbox"
    assert top["next_steps"][0] == f"Run next: `{command}`"
    assert command in (result.folder / "report.html").read_text()
