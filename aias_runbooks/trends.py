"""Trends across archived runs: API health P95, 5xx error rate and database pool usage, one point per run, read
from the verdict.json of past health-check, high-error-rate and database-connection-errors runs.

Each run is one point (its own window, as its finding judged it); points are never averaged into a percentile
across runs. Informational: TRENDS_OK or TRENDS_NO_DATA, both OK; the runbooks themselves page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from . import charts  # noqa: F401 - sets up inline PNG display of figures in a kernel
from .findings import Finding, Severity
from .runner.archive import Filters, parse_time, report_folder, runs
from .runner.catalog import at
from .runner.store import Archive


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    runbook: str
    code_prefix: str      # the finding whose evidence holds the value: API_LATENCY_OK / _P95_HIGH, ...
    key: str              # its evidence key

    def limits(self, thresholds: dict[str, Any]) -> list[tuple[float, str, str]]:
        """(value, label, colour) of the playbook's target and alert lines on this metric's chart."""
        if self.name == "health_p95_ms":
            rule = thresholds["api_response_ms"]
            return [(rule["warning_p95"], f"target {rule['warning_p95']} ms", "#9a6700"),
                    (rule["critical_p95"], f"alert {rule['critical_p95']} ms", "#cf222e")]
        if self.name == "error_rate_pct":
            rule = thresholds["error_rate"]
            return [(100 * rule["warning"], f"target < {100 * rule['warning']:g} %", "#9a6700"),
                    (100 * rule["critical"], f"alert > {100 * rule['critical']:g} %", "#cf222e")]
        rule = thresholds["db_connections"]
        return [(100 * rule["warning_usage"], f"warning {100 * rule['warning_usage']:g} %", "#9a6700"),
                (100 * rule["critical_usage"], f"critical {100 * rule['critical_usage']:g} %", "#cf222e")]


METRICS = [
    Metric("health_p95_ms", "API health P95 (ms)", "health-check", "API_LATENCY_", "p95_ms"),
    Metric("error_rate_pct", "5xx error rate (%)", "high-error-rate", "ERROR_RATE_", "error_rate_pct"),
    Metric("pool_usage_pct", "DB pool usage (%)", "database-connection-errors", "DB_POOL_", "usage_pct"),
]
COLUMNS = ["started_at", "metric", "value", "status", "run_id", "runbook", "report_dir"]


def points(where: Archive | Path | str, env: str, days: int, max_runs: int,
           now: datetime | None = None) -> pd.DataFrame:
    """One row per archived run of `env` in the last `days` with the metric's value (the newest `max_runs` runs
    of each runbook are read); a run whose finding holds no value (unreachable, too few samples) is left out.
    `where`: the archive, a folder or an s3:// prefix (its verdicts are read at once)."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    archive = at(where)
    rows = []
    for metric in METRICS:
        found = [r for r in runs(archive, Filters(since=since, runbook=metric.runbook)) if r.get("env") == env]
        chosen = sorted(found, key=lambda r: str(r.get("started_at")))[-max_runs:]
        folders = {run.get("run_id"): report_folder(archive, run) for run in chosen}   # a hand-edited one: None
        verdicts = archive.read_many(f"{rel}/verdict.json" for rel in folders.values() if rel)
        for run in chosen:
            value = _value(verdicts.get(f"{folders[run.get('run_id')]}/verdict.json"), metric)
            if value is not None:
                rows.append({"started_at": parse_time(run.get("started_at")), "metric": metric.name, "value": value,
                             "status": run.get("status"), "run_id": run.get("run_id"), "runbook": metric.runbook,
                             "report_dir": run.get("report_dir")})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["description"] = f"archived runs of {env} since {since:%Y-%m-%d %H:%M} UTC, one point per run"
    return frame


def _value(data: bytes | None, metric: Metric) -> float | None:
    try:
        verdict = json.loads(data or b"")
    except ValueError:
        return None
    for finding in verdict.get("findings", []):
        evidence = finding.get("evidence") if isinstance(finding, dict) else None
        if str(finding.get("code", "")).startswith(metric.code_prefix) and isinstance(evidence, dict):
            value = evidence.get(metric.key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def summary(frame: pd.DataFrame, thresholds: dict[str, Any]) -> pd.DataFrame:
    """Per metric: runs, first and last run, latest, median and highest value, runs over the target line."""
    rows = []
    for metric in METRICS:
        part = frame[frame["metric"] == metric.name].sort_values("started_at")
        target = metric.limits(thresholds)[0][0]
        rows.append({"metric": metric.label, "runs": len(part),
                     "first": part["started_at"].min() if len(part) else None,
                     "last": part["started_at"].max() if len(part) else None,
                     "latest": part["value"].iloc[-1] if len(part) else None,
                     "median": part["value"].median() if len(part) else None,
                     "highest": part["value"].max() if len(part) else None,
                     "over_target": int((part["value"] > target).sum())})
    return pd.DataFrame(rows)


def chart(frame: pd.DataFrame, thresholds: dict[str, Any]) -> Figure:
    """One panel per metric over time, with the playbook's target and alert lines; runs that were not OK marked."""
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(len(METRICS), 1, sharex=True)
    for axis, metric in zip(axes, METRICS, strict=True):
        part = frame[frame["metric"] == metric.name].sort_values("started_at")
        if part.empty:
            axis.text(0.01, 0.5, f"{metric.label}: no archived {metric.runbook} run in the window",
                      transform=axis.transAxes, va="center")
        else:
            axis.plot(part["started_at"], part["value"], marker="o", ms=3, lw=1, label=metric.runbook)
            bad = part[part["status"] != "OK"]
            if len(bad):
                axis.scatter(bad["started_at"], bad["value"], color="#cf222e", zorder=3, s=18, label="run not OK")
            for value, label, colour in metric.limits(thresholds):
                axis.axhline(value, color=colour, ls="--", lw=1, label=label)
            axis.legend(loc="upper left", fontsize=8)
        axis.set_ylabel(metric.label)
        if metric.name == "health_p95_ms" and not part.empty and part["value"].min() > 0:
            axis.set_yscale("log")   # 5 ms and the 1000 ms alert line both readable, as in charts.latency
        else:
            axis.set_ylim(bottom=0)
    axes[-1].set_xlabel("run started (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def finding(frame: pd.DataFrame, thresholds: dict[str, Any], days: int) -> Finding:
    """TRENDS_OK with each metric's figures, or TRENDS_NO_DATA when no archived run holds any (both OK)."""
    if frame.empty:
        return Finding("TRENDS_NO_DATA", Severity.OK,
                       f"No archived health-check, high-error-rate or database-connection-errors run in the last "
                       f"{days} day(s) holds a value to chart.",
                       {"days": days},
                       ["Schedule those runbooks (every few minutes) so the archive shows how things move."])
    table = summary(frame, thresholds)
    evidence = {row["metric"]: {"runs": int(row["runs"]), "latest": row["latest"], "median": row["median"],
                                "highest": row["highest"], "over_target": row["over_target"]}
                for row in table.to_dict("records")}
    over = int(table["over_target"].sum())
    return Finding("TRENDS_OK", Severity.OK,
                   f"{len(frame)} archived run(s) charted over {days} day(s); {over} point(s) above a target line.",
                   evidence,
                   ["Where points climb towards the target line, run that runbook now and read its findings."])
