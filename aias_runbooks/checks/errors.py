"""High error rate: the 5xx rate per minute under the playbook's sustained rule, dominant error patterns, and the
deployment the errors started with."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import patterns
from ..findings import Finding, Measure, Severity

ROLLBACK_STEPS = ["Roll back to the previous READY production deployment (section 4: dry run first, then "
                  "apply=True with your name), then confirm the error rate falls in the next minutes.",
                  "Open the deployment's commit and the first error of its pattern (section 2) to fix forward."]


def per_minute(frame: pd.DataFrame, thresholds: dict[str, Any]) -> pd.DataFrame:
    """The series with its rate and whether each minute is judged (enough requests) and over the 1 % alert."""
    rule = thresholds["error_rate"]
    if frame.empty:
        return frame.assign(rate=pd.Series(dtype=float), judged=pd.Series(dtype=bool), over=pd.Series(dtype=bool))
    return judge(frame.assign(rate=frame["errors"] / frame["requests"]), "rate", "requests",
                 rule["min_requests_per_minute"], rule["critical"])


def judge(frame: pd.DataFrame, value: str, count: str, least: float, line: float,
          below: bool = False) -> pd.DataFrame:
    """Each minute judged when its `count` reaches `least`, and `over` when judged and past the line (above it, or
    below it for a success rate); the sustained rules count runs of `over` minutes."""
    judged = frame[count] >= least
    past = frame[value] < line if below else frame[value] > line
    return frame.assign(judged=judged, over=judged & past)


def runs(minutes: pd.DataFrame) -> list[tuple[pd.Timestamp, int]]:
    """Every run of consecutive minutes over the line as (first minute, length), oldest first (a minute missing
    from the series ends a run)."""
    found: list[tuple[pd.Timestamp, int]] = []
    last = None   # the previous row's minute when it was over
    for row in minutes.itertuples(index=False):
        if row.over and last is not None and row.minute - last == pd.Timedelta(minutes=1):
            found[-1] = (found[-1][0], found[-1][1] + 1)
        elif row.over:
            found.append((row.minute, 1))
        last = row.minute if row.over else None
    return found


def longest_run(minutes: pd.DataFrame) -> tuple[int, pd.Timestamp | None]:
    """The longest run of consecutive minutes over the alert, and its first minute (the earliest of equals)."""
    found = runs(minutes)
    if not found:
        return 0, None
    start, best = max(found, key=lambda run: run[1])
    return best, start


def error_rate(minutes: pd.DataFrame, thresholds: dict[str, Any], window_minutes: int) -> list[Finding]:
    """ERROR_RATE_HIGH: CRITICAL when the 5xx rate stayed over 1 % for 5 consecutive judged minutes (the playbook's
    alert), WARNING when the window as a whole is over 1 % without a sustained run."""
    if minutes.attrs.get("error"):
        return []
    rule = thresholds["error_rate"]
    requests, errors = int(minutes["requests"].sum()), int(minutes["errors"].sum())
    overall = errors / requests if requests else 0.0
    run, since = longest_run(minutes)
    evidence = {"requests": requests, "errors_5xx": errors, "error_rate_pct": round(100 * overall, 2),
                "longest_run_over_1pct_min": run, "judged_minutes": int(minutes["judged"].sum())}
    # The window's rate against the target; the longest run over the alert line against the sustained window
    # (CRITICAL once it reaches window_minutes).
    measured = [Measure("error_rate", 100 * overall, "%", 100 * rule["warning"], 100 * rule["critical"], 0, 100),
                Measure("minutes_over", run, "min", critical=rule["window_minutes"], minimum=0),
                Measure("requests", requests, minimum=0)]
    if run >= rule["window_minutes"]:
        peak = minutes.loc[minutes["over"], "rate"].max()
        return [Finding("ERROR_RATE_HIGH", Severity.CRITICAL,
                        f"The error rate has been over {100 * rule['critical']:.0f}% for {run} consecutive minutes "
                        f"since {since:%H:%M} UTC (peak {100 * peak:.1f}%).",
                        evidence | {"since": str(since)}, ["Look at what changed then: the deployments (section 1), "
                                                           "the database and external services (section 3)."],
                        measured)]
    if overall > rule["warning"]:
        return [Finding("ERROR_RATE_HIGH", Severity.WARNING,
                        f"{100 * overall:.1f}% of {requests} requests failed (5xx) in the last {window_minutes} min, "
                        f"not yet sustained for {rule['window_minutes']} minutes.", evidence, measures=measured)]
    return [Finding("ERROR_RATE_OK", Severity.OK, f"{100 * overall:.2f}% of {requests} requests failed (5xx) in the "
                    f"last {window_minutes} min; no {rule['window_minutes']}-minute run over 1%.", evidence,
                    measures=measured)]


def pattern_table(found: pd.DataFrame) -> pd.DataFrame:
    """The error_patterns query's messages grouped by route and pattern (patterns.normalise: ids, numbers and
    values masked), largest first, each with its fingerprint and one whole message; attrs `window_errors` is every
    error of the window (the query reads the 1000 most frequent messages)."""
    table = patterns.grouped(found, "message", "errors", by=["route"], first=["first_seen"], last=["last_seen"])
    table.insert(0, "fingerprint", [patterns.fingerprint(r, p) for r, p in zip(table["route"], table["pattern"],
                                                                                  strict=True)])
    if len(found) and not found.attrs.get("error"):
        table.attrs["window_errors"] = int(found["window_errors"].max())
    return table


def dominant_pattern(table: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """ERROR_PATTERN_DOMINANT: one pattern on one route holds most of the window's errors (pattern_table's)."""
    if table.attrs.get("error") or table.empty:
        return []
    rule = thresholds["error_rate"]
    total = max(int(table["errors"].sum()), table.attrs.get("window_errors", 0))
    top = table.iloc[0]
    measured = [Measure("top_pattern_share", 100 * top["errors"] / total if total else None, "%",
                        100 * rule["pattern_dominant_share"], None, 0, 100),
                Measure("errors", total, "", minimum=0)]
    if total < rule["pattern_min_errors"] or top["errors"] / total < rule["pattern_dominant_share"]:
        return [Finding("ERROR_PATTERNS_MIXED", Severity.OK, f"{total} errors in the window; no single pattern "
                        f"dominates (the largest: {int(top['errors'])}).", measures=measured)]
    return [Finding("ERROR_PATTERN_DOMINANT", Severity.WARNING,
                    f"{int(top['errors'])} of {total} errors are one pattern on {top['route'] or '(no route)'}: "
                    f"{top['pattern']}",
                    {"fingerprint": top["fingerprint"], "route": top["route"], "pattern": top["pattern"],
                     "example": top["example"], "first_seen": str(top["first_seen"]),
                     "errors": int(top["errors"]), "of": total},
                    ["Its first occurrence (first_seen) is when it started: compare with the deployments above."],
                    measured)]


def around_deploys(minutes: pd.DataFrame, deploys: pd.DataFrame, thresholds: dict[str, Any]) -> pd.DataFrame:
    """Each deployment that went live inside the series, with the error rate in the minutes before and after."""
    span = pd.Timedelta(minutes=thresholds["error_rate"]["deploy_compare_minutes"])
    rows = []
    start = minutes["minute"].min() if len(minutes) else None
    for d in deploys.itertuples(index=False):
        live_at = d.ready if pd.notna(d.ready) else d.created
        if start is None or live_at < start:
            continue
        before = minutes[(minutes["minute"] >= live_at - span) & (minutes["minute"] < live_at.floor("min"))]
        after = minutes[(minutes["minute"] >= live_at.floor("min")) & (minutes["minute"] < live_at + span)]
        rows.append({"deployment": d.id, "live_at": live_at, "message": d.message, "commit": d.commit,
                     "live_now": d.live, "rate_before": _rate(before), "rate_after": _rate(after),
                     "requests_after": int(after["requests"].sum())})
    return pd.DataFrame(rows, columns=["deployment", "live_at", "message", "commit", "live_now", "rate_before",
                                       "rate_after", "requests_after"])


def _rate(minutes: pd.DataFrame) -> float:
    requests = minutes["requests"].sum()
    return float(minutes["errors"].sum() / requests) if requests else 0.0


def deploy_spike(compared: pd.DataFrame | None, thresholds: dict[str, Any]) -> list[Finding]:
    """ERROR_SPIKE_AFTER_DEPLOY: the error rate after a deployment went live is over 1 % and several times what
    it was before; names the deployment."""
    if compared is None:
        return []
    rule = thresholds["error_rate"]
    suspects = compared[(compared["rate_after"] > rule["critical"])
                        & (compared["rate_after"] >= rule["deploy_spike_factor"] * compared["rate_before"])
                        & (compared["requests_after"] >= rule["min_requests_per_minute"])]
    if suspects.empty:
        return [Finding("NO_DEPLOY_SPIKE", Severity.OK, f"No deployment in the window was followed by an error spike "
                        f"({len(compared)} deployment(s) went live in it).")]
    d = suspects.iloc[-1]
    return [Finding("ERROR_SPIKE_AFTER_DEPLOY", Severity.CRITICAL,
                    f"Errors rose from {100 * d['rate_before']:.1f}% to {100 * d['rate_after']:.1f}% when deployment "
                    f"{d['deployment']} went live at {d['live_at']:%H:%M} UTC ({d['message']}).",
                    {"deployment": d["deployment"], "commit": d["commit"], "message": d["message"],
                     "live_at": str(d["live_at"]), "still_live": bool(d["live_now"])}, ROLLBACK_STEPS,
                    [Measure("error_rate_after", 100 * d["rate_after"], "%", critical=100 * rule["critical"],
                             minimum=0, maximum=100),
                     Measure("error_rate_before", 100 * d["rate_before"], "%", minimum=0, maximum=100)])]


def deploys_unknown(problem: str) -> list[Finding]:
    return [Finding("DEPLOYS_UNKNOWN", Severity.UNKNOWN, f"Deployments were not checked: {problem}")]


def external(pages: pd.DataFrame) -> list[Finding]:
    """EXTERNAL_STATUS_DEGRADED when a provider's status page reports an incident (or cannot be read)."""
    bad = pages[(pages["indicator"].fillna("unknown") != "none")]
    if bad.empty:
        return [Finding("EXTERNAL_STATUS_OK", Severity.OK,
                        f"Every status page is green ({', '.join(pages['service'])}).")]
    said = {r.service: r.indicator or f"unreadable: {r.error}" for r in bad.itertuples(index=False)}
    return [Finding("EXTERNAL_STATUS_DEGRADED", Severity.WARNING,
                    f"{', '.join(said)} report(s) a problem: our errors may be theirs.", {"status": said},
                    ["Read the provider's incident; post a status update naming it if users are affected."])]
