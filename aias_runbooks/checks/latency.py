"""P95 latency of a probe (HTTP or database) against a playbook rule: one pinned method, a minimum count."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from ..thresholds import grade, percentiles


def summary(samples: pd.DataFrame, method: str = "inverted_cdf") -> pd.DataFrame:
    """One row: how many samples were answered, P50/P95/P99 and max latency of the answered ones."""
    answered = samples[samples["answered"]]
    stats = percentiles(answered["latency_ms"], method=method)
    return pd.DataFrame([{
        "samples": len(samples), "answered": len(answered), "ok": int(samples["ok"].sum()),
        "p50_ms": stats["p50"], "p95_ms": stats["p95"], "p99_ms": stats["p99"],
        "max_ms": answered["latency_ms"].max() if len(answered) else None,
        "method": f"{method} (nearest rank)",
    }])


def p95(samples: pd.DataFrame, thresholds: dict[str, Any], rule_name: str, prefix: str,
        next_steps: list[str]) -> list[Finding]:
    """<prefix>_LATENCY_P95_HIGH (WARNING over the target, CRITICAL over the alert), _OK or _UNKNOWN."""
    answered = samples[samples["answered"]]
    if answered.empty:
        return []
    rule, pct = thresholds[rule_name], thresholds["percentiles"]
    stats = percentiles(answered["latency_ms"], method=pct["method"])
    evidence = {"p50_ms": round(stats["p50"], 1), "p95_ms": round(stats["p95"], 1),
                "p99_ms": round(stats["p99"], 1), "samples": stats["count"], "method": stats["method"],
                "target_p95_ms": rule["warning_p95"], "alert_p95_ms": rule["critical_p95"]}
    counted = Measure("samples", stats["count"])
    if stats["count"] < pct["min_samples"]:
        return [Finding(f"{prefix}_LATENCY_UNKNOWN", Severity.UNKNOWN,
                        f"Too few answered samples ({stats['count']} < {pct['min_samples']}) to judge P95.",
                        evidence, ["Re-run with more samples (the `samples` parameter)."],
                        [Measure("samples", stats["count"], "", pct["min_samples"], low_is_bad=True, minimum=0)])]
    measured = [Measure("p95", stats["p95"], "ms", rule["warning_p95"], rule["critical_p95"], 0), counted]
    severity = grade(stats["p95"], rule["warning_p95"], rule["critical_p95"])
    if severity is Severity.OK:
        return [Finding(f"{prefix}_LATENCY_OK", Severity.OK,
                        f"P95 latency {stats['p95']:.0f} ms is within the {rule['warning_p95']} ms target.",
                        evidence, measures=measured)]
    limit = rule["critical_p95"] if severity is Severity.CRITICAL else rule["warning_p95"]
    return [Finding(f"{prefix}_LATENCY_P95_HIGH", severity, f"P95 latency {stats['p95']:.0f} ms is above {limit} ms.",
                    evidence, next_steps, measured)]
