"""Named fault injections, each made real: a slow API really is slow, a down API really refuses connections."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    api: str = "normal"      # normal | slow | down
    diagnosed_by: str = ""   # the runbook and finding codes that must catch it


SCENARIOS = {s.name: s for s in [
    Scenario("healthy", "Everything normal: no runbook should report WARNING or CRITICAL."),
    Scenario("api-slow", "A quarter of API requests take 1.2 s: /api/healthz P95 is above 1000 ms.",
             api="slow", diagnosed_by="health-check: API_LATENCY_P95_HIGH"),
    Scenario("api-down", "The API process is stopped: connections to it are refused.",
             api="down", diagnosed_by="health-check: API_DOWN"),
]}


def get(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise UsageError(f"unknown scenario '{name}'; valid: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]
