"""Workflows not executing: stuck pending executions, the worker, timeouts, the external APIs, plan limits."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity

EXAMPLES = 10


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def stuck_pending(summary: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """WORKFLOWS_STUCK_PENDING: executions pending longer than stuck_pending_minutes (CRITICAL from
    stuck_critical_count of them)."""
    if summary.attrs.get("error") or summary.empty:
        return []
    rule, row = thresholds["workflows"], summary.iloc[0]
    pending, stuck, oldest = int(row["pending"]), int(row["stuck"]), float(row["oldest_wait_s"])
    evidence = {"pending": pending, "stuck": stuck, "oldest_wait": _minutes(oldest),
                "stuck_after_minutes": rule["stuck_pending_minutes"]}
    # stuck: any is a WARNING (the range "0" alerts above 0), stuck_critical_count of them CRITICAL
    measured = [Measure("stuck", stuck, "", 0, rule["stuck_critical_count"], 0),
                Measure("oldest_wait", oldest, "s", 60 * rule["stuck_pending_minutes"], None, 0),
                Measure("pending", pending, "", minimum=0)]
    if stuck == 0:
        return [Finding("WORKFLOWS_QUEUE_OK", Severity.OK, f"{pending} execution(s) pending, none waiting longer "
                        f"than {rule['stuck_pending_minutes']} min (oldest {_minutes(oldest)}).", evidence,
                        measures=measured)]
    severity = Severity.CRITICAL if stuck >= rule["stuck_critical_count"] else Severity.WARNING
    return [Finding("WORKFLOWS_STUCK_PENDING", severity,
                    f"{stuck} of {pending} pending execution(s) have waited longer than "
                    f"{rule['stuck_pending_minutes']} min; the oldest {_minutes(oldest)}.", evidence,
                    ["Nothing picks them up: check the worker (section 2). If it runs, look for a crash loop or a "
                     "lock in its logs.", "Once the worker runs again the queue drains oldest first."], measured)]


def worker(heartbeats: pd.DataFrame, summary: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """WORKER_DOWN: executions are pending and no worker has sent a heartbeat within worker_silent_minutes, or
    none has started an execution within that time while the oldest pending one has waited longer."""
    if heartbeats.attrs.get("error") or summary.attrs.get("error") or summary.empty:
        return []
    silent_s = 60 * thresholds["workflows"]["worker_silent_minutes"]
    pending, oldest = int(summary.iloc[0]["pending"]), float(summary.iloc[0]["oldest_wait_s"])
    seen = heartbeats["seen_s_ago"].min() if len(heartbeats) else None
    started = heartbeats["started_s_ago"].min() if len(heartbeats) else None
    if started is not None and pd.isna(started):
        started = None
    evidence = {"pending": pending, "workers": len(heartbeats),
                "last_heartbeat": "never" if seen is None else f"{_minutes(seen)} ago",
                "last_execution_started": "never" if started is None else f"{_minutes(started)} ago"}
    alive = seen is not None and seen <= silent_s
    idle = started is None or started > silent_s
    if pending and (not alive or (idle and oldest > silent_s)):
        said = ("no worker has ever sent a heartbeat" if seen is None else
                f"the last worker heartbeat was {_minutes(seen)} ago" if not alive else
                "the worker is alive but started nothing for "
                + ("ever" if started is None else _minutes(started)))
        return [Finding("WORKER_DOWN", Severity.CRITICAL, f"The workflow worker is down: {said}, while {pending} "
                        f"execution(s) wait.", evidence,
                        ["Restart the worker (its deployment or process) and read its last log lines for the cause.",
                         "Post a status update: scheduled and triggered workflows are not running."])]
    return [Finding("WORKER_ALIVE", Severity.OK, f"{len(heartbeats)} worker(s); last heartbeat "
                    f"{evidence['last_heartbeat']}, last execution started {evidence['last_execution_started']}.",
                    evidence)]


def timeouts(outcomes: pd.DataFrame, thresholds: dict[str, Any], window_minutes: int,
             by_integration: pd.DataFrame | None = None) -> list[Finding]:
    """WORKFLOW_TIMEOUTS: the share of the window's finished executions that timed out, naming the integrations
    that carry them (`by_integration`: the integration_failures query over the same window)."""
    if outcomes.attrs.get("error"):
        return []
    rule = thresholds["workflows"]
    counts = dict(zip(outcomes["status"], outcomes["executions"].astype(int), strict=True)) if len(outcomes) else {}
    finished = sum(counts.get(s, 0) for s in ("succeeded", "failed", "timed_out"))
    timed_out = counts.get("timed_out", 0)
    evidence = {"finished": finished, "timed_out": timed_out, "failed": counts.get("failed", 0)}
    judged = finished >= rule["min_executions"]
    measured = [Measure("timeout_share", 100 * timed_out / finished if judged else None, "%",
                        100 * rule["timeout_warning"], 100 * rule["timeout_critical"], 0, 100),
                Measure("finished", finished, "", minimum=0)]
    if not judged:
        return [Finding("WORKFLOW_TIMEOUTS_OK", Severity.OK, f"{finished} execution(s) finished in the last "
                        f"{window_minutes} min: too few to judge (fewer than {rule['min_executions']}).", evidence,
                        measures=measured)]
    share = timed_out / finished
    evidence["timed_out_pct"] = round(100 * share, 1)
    if share <= rule["timeout_warning"]:
        return [Finding("WORKFLOW_TIMEOUTS_OK", Severity.OK, f"{timed_out} of {finished} executions timed out in the "
                        f"last {window_minutes} min ({100 * share:.1f}%).", evidence, measures=measured)]
    carriers = _timeouts_by_integration(by_integration)
    evidence["timed_out_by_integration"] = carriers
    said = ""
    if carriers:
        name, n = next(iter(carriers.items()))
        said = f"; {name} carries {n} of them ({100 * n / max(timed_out, 1):.0f}%)"
    severity = Severity.CRITICAL if share > rule["timeout_critical"] else Severity.WARNING
    return [Finding("WORKFLOW_TIMEOUTS", severity, f"{100 * share:.1f}% of {finished} executions timed out in the "
                    f"last {window_minutes} min (over {100 * rule['timeout_warning']:.0f}%){said}.", evidence,
                    [f"Section 4 says whether {next(iter(carriers), 'the integration')} is down or up but slower than "
                     "the workflows wait: a slow external API times out every workflow calling it.",
                     "Retry the timed-out executions (section 6) once it answers in time again."], measured)]


def _timeouts_by_integration(by_integration: pd.DataFrame | None) -> dict[str, int]:
    """{integration: timed-out executions}, most first, those with none left out."""
    if by_integration is None or by_integration.attrs.get("error") or by_integration.empty:
        return {}
    ranked = by_integration[by_integration["timed_out"] > 0].sort_values("timed_out", ascending=False, kind="stable")
    return {str(r.integration): int(r.timed_out) for r in ranked.head(EXAMPLES).itertuples(index=False)}


def external_apis(failures: pd.DataFrame, probes: pd.DataFrame | None, thresholds: dict[str, Any],
                  problem: str = "") -> list[Finding]:
    """EXTERNAL_API_DOWN: an integration that does not answer the probe, or whose recent executions mostly failed
    (integration_failure_share of at least integration_min_executions). EXTERNAL_API_SLOW: one whose recent
    executions mostly timed out while it answers the probe with 200 (or was not probed: triage): up, but slower
    than the workflows wait, a different fix from an outage."""
    rule = thresholds["workflows"]
    probed = {} if probes is None else {r.integration: r for r in probes.itertuples(index=False)}
    down = {name: f"probe: {r.error}" for name, r in probed.items() if not r.ok}
    slow: dict[str, dict[str, Any]] = {}
    for row in ([] if failures.attrs.get("error") else failures.itertuples(index=False)):
        bad = int(row.failed) + int(row.timed_out)
        if row.executions < rule["integration_min_executions"] or \
                bad / row.executions < rule["integration_failure_share"]:
            continue
        if int(row.timed_out) > int(row.failed) and row.integration not in down:
            slow[row.integration] = _slowness(row, probed.get(row.integration), rule)
            continue
        said = (f"{bad} of {row.executions} executions in the last {rule['integration_window_minutes']} "
                f"min failed ({row.latest_error})")
        down[row.integration] = f"{down[row.integration]}; {said}" if row.integration in down else said
    found = []
    if down:
        found.append(Finding("EXTERNAL_API_DOWN", Severity.CRITICAL,
                             f"External API down: {', '.join(down)}. Every workflow calling it fails.",
                             {"integrations": down},
                             ["Check the provider's status page and the connector's credentials (an expired or revoked "
                              "token fails every call too).", "Tell the tenants whose workflows use it; retry their "
                              "failed executions (section 6) once it answers again."]))
    if slow:
        found.append(_slow(slow, rule))
    if found:
        return found
    if probes is None:
        return [Finding("INTEGRATIONS_NOT_PROBED", Severity.UNKNOWN, f"External APIs were not probed: {problem}")]
    return [Finding("EXTERNAL_APIS_OK", Severity.OK, f"Every integration answers ({', '.join(probes['integration'])})"
                    " and none fails most of its recent executions.")]


def _slowness(row: Any, probe: Any, rule: dict[str, Any]) -> dict[str, Any]:
    """One slow integration's evidence: its timeouts, their share and what its probe answered, how fast."""
    said = {"timed_out": int(row.timed_out), "executions": int(row.executions),
            "timeout_share_pct": round(100 * int(row.timed_out) / int(row.executions), 1),
            "window_minutes": rule["integration_window_minutes"], "latest_error": row.latest_error}
    if probe is None:
        return said | {"probe": "not probed here (workflows-not-executing probes it)"}
    return said | {"probe_status": int(probe.status), "probe_latency_ms": round(float(probe.latency_ms), 1)}


def _slow(slow: dict[str, dict[str, Any]], rule: dict[str, Any]) -> Finding:
    """EXTERNAL_API_SLOW naming each slow integration, its timeout share and its probe's latency."""
    name, first = next(iter(slow.items()))
    more = f" (and {', '.join(list(slow)[1:])})" if len(slow) > 1 else ""
    share = (f"{first['timeout_share_pct']:.0f}% of its executions in the last {rule['integration_window_minutes']} "
             f"min timed out ({first['timed_out']} of {first['executions']})")
    title = (f"External API slow: {name}{more} answers (HTTP {first['probe_status']} in "
             f"{first['probe_latency_ms'] / 1000:.1f} s) but {share}: up, slower than the workflows wait."
             if "probe_latency_ms" in first else
             f"External API slow: {name}{more} timed out, not failed: {share}. Not probed here: "
             "workflows-not-executing's probe says whether it answers.")
    return Finding("EXTERNAL_API_SLOW", Severity.WARNING, title, {"integrations": slow},
                   [f"{name} times out rather than refusing: check its status page for degraded performance and "
                    "what the workflows send it (larger payloads, a slower model or endpoint).",
                    "Raise the connector's call timeout or make the calls smaller, then retry the timed-out "
                    "executions (section 6); tell the tenants whose workflows use it."])


def plan_limits(usage: pd.DataFrame) -> list[Finding]:
    """PLAN_LIMIT_REACHED: tenants whose executions today reached their plan's max_executions_per_day."""
    if usage.attrs.get("error"):
        return []
    if usage.empty:
        return [Finding("PLAN_LIMITS_OK", Severity.OK, "No tenant reached its plan's daily execution limit today.")]
    first = usage.iloc[0]
    tenants = [f"{r.tenant} ({r.slug}, {r.tier}): {r.executions_today} of {r.daily_limit}"
               for r in usage.head(EXAMPLES).itertuples(index=False)]
    return [Finding("PLAN_LIMIT_REACHED", Severity.WARNING,
                    f"{len(usage)} tenant(s) reached their plan's daily execution limit: {first['tenant']} "
                    f"({first['slug']}, {first['tier']}: {first['executions_today']} of {first['daily_limit']} today)"
                    + (f" and {len(usage) - 1} more." if len(usage) > 1 else "."), {"tenants": tenants},
                    ["Their workflows do not run until midnight UTC: tell them, and offer the upgrade (Pro: 5000 a "
                     "day).", "Not a platform fault: do not retry their executions before the limit resets."])]
