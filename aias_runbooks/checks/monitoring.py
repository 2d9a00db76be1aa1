"""Monitoring: the playbook's five key metrics per minute, its alert rules judged as sustained windows, the
error-rate SLO's multi-window burn rates, and the health check that alerts at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from . import errors, health

COUNTS = ["requests", "errors", "db_samples", "deliveries", "delivered", "signups", "signed_up"]
LATENCIES = ["response_p95_ms", "db_p95_ms"]


@dataclass(frozen=True)
class Metric:
    """One key metric: its column in the series, the samples a minute needs to be judged, and its two lines."""
    key: str
    code: str
    title: str
    value: str
    count: str
    least: float
    target: float
    alert: float | None   # None: the playbook sets a target and no alert rule (signups)
    below: bool           # True when lower is worse (a success rate)
    need: int             # consecutive over minutes that fire: the sustained window, or 1 for a counted window
    counted: int          # minutes each value is counted over (webhooks, signups: sparse); 0: per minute
    unit: str
    runbook: str
    rule: str


def metrics(thresholds: dict[str, Any]) -> list[Metric]:
    """The five metrics with their lines from params/thresholds.yaml (values in the unit shown: % or ms)."""
    mon, pct = thresholds["monitoring"], thresholds["percentiles"]
    err, api, db = thresholds["error_rate"], thresholds["api_response_ms"], thresholds["db_latency_ms"]
    hook, sign = thresholds["webhook_failure_rate"], thresholds["signup_success_rate"]
    return [
        Metric("error_rate", "MONITOR_ERROR_RATE", "Error rate (5xx)", "error_rate_pct", "requests",
               err["min_requests_per_minute"], 100 * err["warning"], 100 * err["critical"], False,
               err["window_minutes"], 0, "%", "high-error-rate",
               f"> {100 * err['critical']:g}% for {err['window_minutes']} minutes"),
        Metric("response", "MONITOR_RESPONSE_P95", "Response time P95", "response_p95_ms", "requests",
               pct["min_samples"], api["warning_p95"], api["critical_p95"], False, api["window_minutes"], 0, "ms",
               "health-check", f"P95 > {api['critical_p95']} ms for {api['window_minutes']} minutes"),
        Metric("db", "MONITOR_DB_LATENCY", "Database latency P95 (/api/healthz)", "db_p95_ms", "db_samples",
               pct["min_samples"], db["warning_p95"], db["critical_p95"], False, db["window_minutes"], 0, "ms",
               "database-connection-errors", f"P95 > {db['critical_p95']} ms for {db['window_minutes']} minutes"),
        Metric("webhooks", "MONITOR_WEBHOOK_FAILURES", "Webhook failures", "webhook_failure_pct",
               "webhook_window_deliveries", mon["min_deliveries"], 100 * hook["warning"], 100 * hook["critical"],
               False, 1, hook["window_minutes"], "%", "stripe-webhook-failures",
               f"> {100 * hook['critical']:g}% in {hook['window_minutes']} minutes"),
        Metric("signups", "MONITOR_SIGNUP_SUCCESS", "Signup success", "signup_success_pct", "signup_window_attempts",
               sign["min_attempts"], 100 * sign["warning"], None, True, 1, mon["signup_window_minutes"], "%",
               "signup-failures",
               f"target > {100 * sign['warning']:g}% over {mon['signup_window_minutes']} minutes (no alert rule)"),
    ]


MEASURES = {"error_rate": "error_rate", "response": "response_p95", "db": "db_p95", "webhooks": "webhook_failures",
            "signups": "signup_success"}


def measure(metric: Metric, value: float | None) -> Measure:
    """A value of the metric as a Measure with its target (warning) and alert (critical) lines."""
    top = 100 if metric.unit == "%" else None
    return Measure(MEASURES[metric.key], value, metric.unit, metric.target, metric.alert, 0, top, metric.below)


def series(frame: pd.DataFrame, thresholds: dict[str, Any], window_minutes: int,
           now: datetime | None = None) -> pd.DataFrame:
    """Every minute of the window, oldest first, with the five metrics; a minute the API logged nothing in is
    zeros (and no P95), so a silent API shows as a drop. Webhooks and signups are sparse: each minute carries the
    rate over the counted window that ends with it (webhook_failure_rate.window_minutes,
    monitoring.signup_window_minutes)."""
    end = pd.Timestamp(now or datetime.now(timezone.utc)).floor("min")
    index = pd.date_range(end - pd.Timedelta(minutes=window_minutes - 1), end, freq="min", name="minute")
    out = pd.DataFrame(index=index)
    known = frame.set_index(pd.to_datetime(frame["minute"], utc=True)) if len(frame) else None
    for column in COUNTS + LATENCIES:
        if known is None or column not in known:
            out[column] = 0 if column in COUNTS else float("nan")
        elif column in COUNTS:
            out[column] = known[column].astype(int).reindex(index, fill_value=0)
        else:
            out[column] = known[column].astype(float).reindex(index)
    out["error_rate_pct"] = 100 * out["errors"] / out["requests"].where(out["requests"] > 0)
    hooks = out[["deliveries", "delivered"]].rolling(thresholds["webhook_failure_rate"]["window_minutes"],
                                                     min_periods=1).sum()
    out["webhook_window_deliveries"] = hooks["deliveries"].astype(int)
    out["webhook_failure_pct"] = 100 * (1 - hooks["delivered"] / hooks["deliveries"].where(hooks["deliveries"] > 0))
    signs = out[["signups", "signed_up"]].rolling(thresholds["monitoring"]["signup_window_minutes"],
                                                  min_periods=1).sum()
    out["signup_window_attempts"] = signs["signups"].astype(int)
    out["signup_success_pct"] = 100 * signs["signed_up"] / signs["signups"].where(signs["signups"] > 0)
    out = out.reset_index()
    out.attrs["error"] = frame.attrs.get("error")
    return out


def judged(minutes: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The metric per minute: value, samples, judged, over (its alert line) and over_target (its target line)."""
    frame = minutes[["minute", metric.value, metric.count]].rename(columns={metric.value: "value",
                                                                             metric.count: "samples"})
    target = errors.judge(frame, "value", "samples", metric.least, metric.target, metric.below)
    out = target.assign(over=False) if metric.alert is None else \
        errors.judge(frame, "value", "samples", metric.least, metric.alert, metric.below)
    out = out.assign(over_target=target["over"])
    out.attrs["error"] = minutes.attrs.get("error")
    return out


def check(minutes: pd.DataFrame, metric: Metric, thresholds: dict[str, Any], environment: str) -> list[Finding]:
    """The metric's finding when it breached a line long enough: CRITICAL while over its alert line for the
    sustained window (or when that ended within monitoring.recent_minutes), WARNING for a breach that ended earlier
    in the window or for a sustained miss of the target; nothing when quiet (a 1-minute blip included)."""
    if minutes.attrs.get("error") or minutes.empty:
        return []
    frame = judged(minutes, metric)
    last = frame["minute"].max()
    recent = last - pd.Timedelta(minutes=thresholds["monitoring"]["recent_minutes"])
    alerts = [r for r in errors.runs(frame) if r[1] >= metric.need]
    targets = [r for r in errors.runs(frame.assign(over=frame["over_target"])) if r[1] >= metric.need]
    line, kind = (metric.alert, "alert") if alerts else (metric.target, "target")
    found = alerts or [r for r in targets if _end(r) >= recent]
    if not found:
        return []
    start, length = found[-1]
    end = _end(found[-1])
    during = frame[(frame["minute"] >= start) & (frame["minute"] <= end)]
    worst = during["value"].min() if metric.below else during["value"].max()
    still = not frame[(frame["minute"] > end) & frame["judged"]].shape[0]
    evidence = {"metric": metric.title, "rule": metric.rule, "line": f"{_fmt(line, metric.unit)} ({kind})",
                "since": str(start), "until": str(end), "minutes_over": length, "still_over": still,
                "worst": _fmt(worst, metric.unit), "needed_minutes": metric.need,
                "judged_minutes": int(frame["judged"].sum()), "of_minutes": len(frame),
                "min_samples_per_minute": metric.least}
    word = "below" if metric.below else "over"
    span = f"for {length} minute{'s' if length > 1 else ''} from {start:%H:%M} to {end:%H:%M} UTC"
    if metric.counted:
        span = (f"in the {metric.counted} minutes up to {end:%H:%M} UTC" if length == 1 else
                f"in every {metric.counted}-minute window ending from {start:%H:%M} to {end:%H:%M} UTC")
    if kind == "alert" and end >= recent:
        severity, title = Severity.CRITICAL, (f"{metric.title} {word} {_fmt(line, metric.unit)} {span}"
                                              f"{'' if still else ' (just ended)'}: the playbook's alert.")
    elif kind == "alert":
        severity, title = Severity.WARNING, (f"{metric.title} was {word} the {_fmt(line, metric.unit)} alert line "
                                             f"{span}; it has recovered since.")
    else:
        severity, title = Severity.WARNING, (f"{metric.title} {word} its {_fmt(line, metric.unit)} target "
                                             f"{span} (not the alert line).")
    worst_of = "window" if metric.counted else "minute"
    return [Finding(metric.code, severity, f"{title} Worst {worst_of}: {evidence['worst']}.", evidence,
                    _steps(metric, environment),
                    [measure(metric, worst), Measure("minutes_over", length, "min", critical=metric.need, minimum=0)])]


def _end(run: tuple[pd.Timestamp, int]) -> pd.Timestamp:
    return run[0] + pd.Timedelta(minutes=run[1] - 1)


def _fmt(value: float, unit: str) -> str:
    return f"{value:.0f} ms" if unit == "ms" else f"{value:.1f}%"


STEPS = {
    "high-error-rate": "it finds the deployment, the dominant error pattern and the provider behind the errors",
    "health-check": "it times /api/healthz now; then high-error-rate for the slow route and deployment",
    "database-connection-errors": "pool saturation, leaks, blocking locks and slow queries make the database slow",
    "stripe-webhook-failures": "it tells a wrong signing secret from an endpoint that is down and reconciles",
    "signup-failures": "it tells the rate limiter from Supabase Auth and the email service",
}


def _steps(metric: Metric, environment: str) -> list[str]:
    steps = [f"Run `aias-runbooks run {metric.runbook} --env {environment}`: {STEPS[metric.runbook]}."]
    if metric.key == "response":
        steps.append(f"Run `aias-runbooks run high-error-rate --env {environment}` if a deployment went live "
                     "when the slowness started.")
    return steps


def burn_rates(minutes: pd.DataFrame, thresholds: dict[str, Any], slo_target: float,
               window_minutes: int) -> pd.DataFrame:
    """Each burn-rate window of the error-rate SLO (page: 1 h and 5 min, ticket: 6 h and 30 min): its error ratio
    over the last N minutes and burn rate = error ratio / (1 - SLO); a window longer than the series is not
    evaluated (burn_rate is empty and `evaluated` says why)."""
    rows = []
    for pair, rule in thresholds["monitoring"]["burn_rate"].items():
        for which in ("long_minutes", "short_minutes"):
            span = rule[which]
            last = minutes.tail(span)
            requests, failed = int(last["requests"].sum()), int(last["errors"].sum())
            if span > window_minutes:
                why = f"not evaluated: window_minutes={window_minutes} < {span}"
            elif not requests:
                why = "not evaluated: no requests"
            else:
                why = "evaluated"
            ratio = failed / requests if requests else None
            rows.append({"pair": pair, "severity": rule["severity"], "window": _span(span), "requests": requests,
                         "errors_5xx": failed, "error_ratio_pct": None if ratio is None else round(100 * ratio, 3),
                         "burn_rate": round(ratio / (1 - slo_target), 2) if ratio is not None and why == "evaluated"
                         else None, "factor": rule["factor"], "evaluated": why})
    return pd.DataFrame(rows)


def _span(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def burn_rate(rates: pd.DataFrame, slo_target: float, environment: str) -> list[Finding]:
    """MONITOR_BURN_RATE: CRITICAL (page) when both page windows burn the error budget at >= their factor,
    WARNING (ticket) when both ticket windows do; a pair the window cannot hold is named in the evidence."""
    if rates.empty:
        return []
    evidence: dict[str, Any] = {"slo": f"{100 * slo_target:g}% of requests not 5xx",
                                "error_budget_pct": round(100 * (1 - slo_target), 3)}
    fired = []
    for pair, rows in rates.groupby("pair", sort=False):
        said = "; ".join(f"{r.window}: " + (f"burn {r.burn_rate:g}" if r.burn_rate is not None and
                                             pd.notna(r.burn_rate) else r.evaluated)
                         for r in rows.itertuples(index=False))
        evidence[f"{pair}_pair"] = f"{said} (fires at >= {rows['factor'].iloc[0]:g} in both)"
        if rows["burn_rate"].notna().all() and (rows["burn_rate"] >= rows["factor"]).all():
            fired.append((Severity(rows["severity"].iloc[0]), pair, said))
    if not fired:
        return []
    severity, pair, said = max(fired, key=lambda f: f[0].rank)
    return [Finding("MONITOR_BURN_RATE", severity,
                    f"The error budget of the {100 * slo_target:g}% SLO is burning fast ({pair} pair: {said}).",
                    evidence, [f"Run `aias-runbooks run high-error-rate --env {environment}` now: at this rate the "
                               "month's error budget is gone in days or hours."], _burns(rates))]


def _burns(rates: pd.DataFrame) -> list[Measure]:
    """Each window's burn rate (burn_<pair>_long, burn_<pair>_short) with its factor as the line of its severity."""
    out = []
    for pair, rows in rates.groupby("pair", sort=False):
        for which, r in zip(("long", "short"), rows.itertuples(index=False), strict=False):
            line = {"warning": r.factor} if r.severity == "WARNING" else {"critical": r.factor}
            out.append(Measure(f"burn_{pair}_{which}", r.burn_rate, minimum=0, **line))
    return out


def health_check(samples: pd.DataFrame, thresholds: dict[str, Any], environment: str) -> list[Finding]:
    """MONITOR_HEALTH_CHECK_FAILED at once (health_check.failure_severity, CRITICAL) when any /api/healthz
    sample failed: unanswered, or not {"ok": true} (health-check's availability says which)."""
    said = health.availability(samples, thresholds)[0]
    failed = int((~samples["ok"]).sum()) if len(samples) else 0
    if said.code == "API_HEALTHY" and not failed:
        return []
    return [Finding("MONITOR_HEALTH_CHECK_FAILED", Severity(thresholds["health_check"]["failure_severity"]),
                    f"{failed} of {len(samples)} health checks failed: {said.title}",
                    {"health_check": said.code} | said.evidence,
                    [f"Run `aias-runbooks run incident-system-down --env {environment}` (every subsystem at once) "
                     f"and `aias-runbooks run health-check --env {environment}`.", *health.SYSTEM_DOWN_STEPS],
                    [Measure("failed_checks", failed, "", critical=0, minimum=0, maximum=len(samples))])]


def quiet(recorded: list[Finding], minutes: pd.DataFrame, thresholds: dict[str, Any], rates: pd.DataFrame,
          window_minutes: int) -> list[Finding]:
    """MONITOR_OK when nothing was found (no rule fired, and the metrics could be read): what was judged, and the
    burn-rate pairs, evaluated or not."""
    if minutes.attrs.get("error") or any(f.severity is not Severity.OK for f in recorded):
        return []
    evidence: dict[str, Any] = {"window_minutes": window_minutes}
    measured = []
    for metric in metrics(thresholds):
        frame = judged(minutes, metric)
        evidence[f"{metric.key}_judged_minutes"] = int(frame["judged"].sum())
        latest = frame.loc[frame["judged"], "value"]
        measured.append(measure(metric, latest.iloc[-1] if len(latest) else None))   # the newest judged minute
    for pair, rows in rates.groupby("pair", sort=False):
        evidence[f"burn_{pair}"] = "; ".join(f"{r.window}: " + (f"{r.burn_rate:g}" if pd.notna(r.burn_rate)
                                                                  else r.evaluated)
                                             for r in rows.itertuples(index=False))
    return [Finding("MONITOR_OK", Severity.OK,
                    f"No alert rule fired over the last {window_minutes} min and the health check answered ok.",
                    evidence, measures=measured)]


def table(minutes: pd.DataFrame, thresholds: dict[str, Any]) -> pd.DataFrame:
    """One row per minute, newest first: the five values (empty when the minute was not judged) and the metrics
    over their alert line (or below the signup target) in it."""
    out = pd.DataFrame({"minute": minutes["minute"], "requests": minutes["requests"]})
    over: dict[str, pd.Series] = {}
    for metric in metrics(thresholds):
        frame = judged(minutes, metric)
        out[f"{metric.key} ({metric.unit})"] = frame["value"].where(frame["judged"]).round(1)
        over[metric.key] = frame["over"] if metric.alert is not None else frame["over_target"]
    out["over the line"] = [", ".join(key for key, flags in over.items() if flags.iloc[i]) for i in range(len(out))]
    return out.iloc[::-1].reset_index(drop=True)
