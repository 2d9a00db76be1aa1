"""Quick Health Check: is /api/healthz answering, saying ok, and fast enough?"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Severity
from .latency import p95

SYSTEM_DOWN_STEPS = [
    "Check Vercel status and the latest deployment (was something just deployed? roll back if so).",
    "Check Supabase status: /api/healthz fails when the database is unreachable.",
    "Check external services (Stripe, Resend) status pages.",
    "Notify the team and post a status update (playbook: Emergency Procedures / System Down).",
]
SLOW_STEPS = [
    "Run the `database-connection-errors` runbook: slow health checks usually wait on the database.",
    "Check Vercel function execution times and recent deployments.",
    "Re-run this check in 5 minutes: the alert rule is P95 > 1000 ms sustained for 5 minutes.",
]


def availability(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """API_DOWN when nothing answered, API_UNHEALTHY when answers are not {"ok": true}, else API_HEALTHY."""
    url = samples.attrs.get("url", "/api/healthz")
    last_error = samples["error"].iloc[-1] if len(samples) else "no sample sent"
    if not samples["answered"].any():
        return [Finding("API_DOWN", Severity.CRITICAL, "The API is not answering: every request failed.",
                        {"url": url, "attempts": len(samples), "last_error": last_error}, SYSTEM_DOWN_STEPS)]
    if samples.attrs.get("stopped_early"):   # it answered, then stopped: down now, not a blip
        silent = len(samples) - int(samples["answered"].to_numpy().nonzero()[0].max()) - 1
        return [Finding("API_DOWN", Severity.CRITICAL,
                        f"The API stopped answering during the check: the last {silent} requests failed.",
                        {"url": url, "attempts": len(samples), "answered": int(samples["answered"].sum()),
                         "last_error": last_error}, SYSTEM_DOWN_STEPS)]
    return [_health(samples, url, thresholds)]


def latency(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """API_LATENCY_P95_HIGH against the playbook's 500 ms target and 1000 ms alert (answered samples only)."""
    return p95(samples, thresholds, "api_response_ms", "API", SLOW_STEPS)


def _health(samples: pd.DataFrame, url: str, thresholds: dict[str, Any]) -> Finding:
    bad = samples[~samples["ok"]]
    if bad.empty:
        return Finding("API_HEALTHY", Severity.OK, "Every health check answered {\"ok\": true}.",
                       {"url": url, "samples": len(samples)})
    every = len(bad) == len(samples)
    severity = Severity(thresholds["health_check"]["failure_severity"]) if every else Severity.WARNING
    title = ("The API answers but reports itself unhealthy." if every
             else f"{len(bad)} of {len(samples)} health checks failed (intermittent).")
    return Finding("API_UNHEALTHY", severity, title,
                   {"url": url, "failed": len(bad), "samples": len(samples),
                    "statuses": sorted({str(s) for s in bad["status"]}), "example": bad["error"].iloc[0]},
                   SYSTEM_DOWN_STEPS)

