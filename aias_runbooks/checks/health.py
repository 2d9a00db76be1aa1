"""Quick Health Check: is /api/healthz answering, saying ok, and fast enough?"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
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
    """API_DOWN when nothing answered (or it stopped answering), naming how the last request failed (e.g. not
    answering within its deadline), API_UNHEALTHY when answers are not {"ok": true}, else API_HEALTHY. A probe
    that its run section's budget cut short says so."""
    url = samples.attrs.get("url", "/api/healthz")
    last_error = samples["error"].iloc[-1] if len(samples) else "no sample sent"
    if not samples["answered"].any():
        found = Finding("API_DOWN", Severity.CRITICAL, f"The API is not answering: every request failed "
                        f"({last_error}).", {"url": url, "attempts": len(samples), "last_error": last_error},
                        SYSTEM_DOWN_STEPS)
    elif samples.attrs.get("stopped_early") and not samples["answered"].iloc[-1]:
        # it answered, then stopped: down now, not a blip
        silent = len(samples) - int(samples["answered"].to_numpy().nonzero()[0].max()) - 1
        found = Finding("API_DOWN", Severity.CRITICAL,
                        f"The API stopped answering during the check: the last {silent} requests failed "
                        f"({last_error}).", {"url": url, "attempts": len(samples),
                                             "answered": int(samples["answered"].sum()), "last_error": last_error},
                        SYSTEM_DOWN_STEPS)
    else:
        found = _health(samples, url, thresholds)
    if budget := samples.attrs.get("budget_s"):
        found.title += (f" Only {len(samples)} of {samples.attrs.get('requested')} requests were sent: the run "
                        f"section's {budget:g} s budget ran out.")
        found.evidence["budget_s"] = budget
    return [found]


def latency(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """API_LATENCY_P95_HIGH against the playbook's 500 ms target and 1000 ms alert, judged on successful answers.

    An error answer's latency measures the failure (a 503 that waited for a database timeout), not the service:
    it is API_UNHEALTHY's business. With no successful answer there is no latency finding; with fewer than the
    minimum count, API_LATENCY_UNKNOWN says so instead of guessing.
    """
    successful = samples[samples["ok"] & samples["answered"]]
    findings = p95(successful, thresholds, "api_response_ms", "API", SLOW_STEPS)
    errors = int((samples["answered"] & ~samples["ok"]).sum())
    for finding in findings:
        finding.evidence["error_answers_excluded"] = errors
        if finding.severity is Severity.UNKNOWN and errors:
            least = thresholds["percentiles"]["min_samples"]
            finding.title = (f"Only {len(successful)} successful answer(s) (< {least}): latency is not judged "
                             f"on the {errors} error answer(s); see API_UNHEALTHY.")
    return findings


def _health(samples: pd.DataFrame, url: str, thresholds: dict[str, Any]) -> Finding:
    bad = samples[~samples["ok"]]
    # any failed check is a WARNING; failure_severity (CRITICAL) depends on which failed (all, or the last ones)
    measured = [Measure("failed_checks", len(bad), "", 0, None, 0, len(samples))]
    if bad.empty:
        return Finding("API_HEALTHY", Severity.OK, "Every health check answered {\"ok\": true}.",
                       {"url": url, "samples": len(samples)}, measures=measured)
    every = len(bad) == len(samples)
    stopped = bool(samples.attrs.get("stopped_early"))
    failing_now = every or stopped     # every answer an error, or the last ones in a row: failing now
    severity = Severity(thresholds["health_check"]["failure_severity"]) if failing_now else Severity.WARNING
    errors = bad["error"].fillna("no error text").value_counts(sort=True)   # most frequent first, ties by first seen
    if every:
        title = "The API answers but reports itself unhealthy: every health check failed"
    elif stopped:
        title = f"The API started failing its health checks: the last {_trailing_failures(samples)} in a row failed"
    else:
        title = f"{len(bad)} of {len(samples)} health checks failed (intermittent)"
    if stopped:
        title += f" (stopped after {len(samples)} of {samples.attrs.get('requested', len(samples))} requests)"
    return Finding("API_UNHEALTHY", severity, title + ".",
                   {"url": url, "failed": len(bad), "samples": len(samples),
                    "successful": int(samples["ok"].sum()),
                    "statuses": sorted({str(s) for s in bad["status"]}),
                    "example": str(errors.index[0]), "example_count": int(errors.iloc[0]),
                    "errors": {str(k): int(v) for k, v in errors.head(5).items()}},
                   SYSTEM_DOWN_STEPS, measured)


def _trailing_failures(samples: pd.DataFrame) -> int:
    ok = samples["ok"].to_numpy().nonzero()[0]
    return len(samples) - (int(ok.max()) + 1 if len(ok) else 0)
