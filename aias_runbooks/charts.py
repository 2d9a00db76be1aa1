"""Charts people would rather look at than tables: latency with the playbook's target and alert lines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter


def _subplots(*grid: int, figsize: tuple[float, float], **kwargs):
    """A figure and its axes without pyplot: its import (the backend machinery) costs every run ~0.2 s, and
    these figures are never shown in a window."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def _log_ms(axis) -> None:
    """A log-scale axis labelled in plain milliseconds (5, 10, 100, 1000) instead of powers of ten: easier to read,
    and it spares drawing every label through mathtext (a third of a latency chart's cost). Minor ticks at 2 and 5
    of each decade, not all eight: the grid still reads, and each tick is an object drawn (a quarter of the rest)."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(LogLocator(subs=(2, 5)))
    axis.set_minor_formatter(NullFormatter())


def _show_inline() -> None:
    """In a kernel, a Figure that ends a cell is shown as PNG (what pyplot's inline backend would set up)."""
    from IPython import get_ipython
    shell = get_ipython()
    if shell is not None:
        from IPython.core.pylabtools import select_figure_formats
        select_figure_formats(shell, {"png"}, bbox_inches=None)   # tight_layout already fits: one draw, not two


_show_inline()


def latency(samples: pd.DataFrame, rule: dict[str, Any], title: str = "Latency") -> Figure:
    """Per-sample latency (failures marked) and its histogram, on a log scale so that 5 ms and the
    1000 ms alert line are both readable."""
    if samples.empty:
        return _nothing(f"{title}: no samples (target unreachable)")
    fig, (series, hist) = _subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    answered = samples[samples["answered"]]
    failed = samples[~samples["ok"]]
    series.plot(answered["sample"], answered["latency_ms"], marker="o", ms=3, lw=1, label="answered")
    if not failed.empty:
        series.scatter(failed["sample"], failed["latency_ms"], marker="x", color="#cf222e", zorder=3,
                       label="failed")
    values = answered["latency_ms"].to_numpy()
    low = max(min(values.min() if len(values) else 1, rule["warning_p95"]) / 2, 0.1)
    high = max(values.max() if len(values) else 1, rule["critical_p95"]) * 1.5
    hist.hist(values, bins=np.geomspace(low, high, 40), color="#4c72b0")
    for axis, draw in ((series, series.axhline), (hist, hist.axvline)):
        draw(rule["warning_p95"], color="#9a6700", ls="--", lw=1, label=f"target P95 {rule['warning_p95']} ms")
        draw(rule["critical_p95"], color="#cf222e", ls="--", lw=1, label=f"alert P95 {rule['critical_p95']} ms")
        axis.grid(alpha=0.3, which="both")
    series.set(title=f"{title}: each sample", xlabel="sample", ylabel="ms (log scale)", yscale="log",
               ylim=(low, high))
    series.xaxis.set_major_locator(MaxNLocator(integer=True))
    hist.set(title="distribution", xlabel="ms (log scale)", ylabel="samples", xscale="log")
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    _log_ms(series.yaxis)
    _log_ms(hist.xaxis)
    series.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.16, top=0.9, wspace=0.2)   # labels of known width:
    return fig   # fixed margins fit them, without the extra draw of tight_layout


STATE_COLOURS = {"active": "#1a7f37", "idle": "#8c959f", "idle in transaction": "#cf222e",
                 "idle in transaction (aborted)": "#82071e", "unknown": "#d0d7de"}


def pool_usage(by_state: pd.DataFrame, limits: pd.DataFrame, rule: dict[str, Any]) -> Figure:
    """Connections stacked by state, overall and per application, against the usable slots and 80/95 % lines."""
    if by_state.empty or limits.empty:
        return _nothing("Connection pool: no data (database unreachable)")
    usable = int(limits.iloc[0]["usable"])
    table = by_state.pivot_table(index="application", columns="state", values="connections", aggfunc="sum",
                                 fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values().index]
    fig, (total, apps) = _subplots(1, 2, figsize=(11, max(2.6, 0.35 * len(table) + 1.4)),
                                      gridspec_kw={"width_ratios": [1, 1.4]})
    table.sum().to_frame("all").T.plot.barh(stacked=True, ax=total, legend=False,
                                            color=[STATE_COLOURS.get(c, "#4c72b0") for c in table.columns])
    for share, colour in ((rule["warning_usage"], "#9a6700"), (rule["critical_usage"], "#cf222e"), (1, "black")):
        total.axvline(share * usable, color=colour, ls="--", lw=1, label=f"{share:.0%} of {usable} usable")
    total.set(title="all client connections", xlabel="connections", xlim=(0, max(usable, table.values.sum()) * 1.05))
    total.legend(fontsize=8, loc="lower right")
    table.plot.barh(stacked=True, ax=apps, color=[STATE_COLOURS.get(c, "#4c72b0") for c in table.columns])
    apps.set(title="by application", xlabel="connections", ylabel="")
    apps.legend(fontsize=8, title="state", loc="lower right")
    fig.tight_layout()
    return fig


def table_sizes(sizes: pd.DataFrame) -> Figure:
    """The largest tables, total size in MB (table, indexes and TOAST)."""
    if sizes.empty:
        return _nothing("Table sizes: no data")
    data = sizes.set_index("table_name")["total_bytes"].sort_values() / 1e6
    fig, axis = _subplots(figsize=(9, max(2.5, 0.3 * len(data) + 1)))
    data.plot.barh(ax=axis, color="#4c72b0")
    axis.set(title="largest tables (with indexes)", xlabel="MB", ylabel="")
    axis.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


DELIVERY_COLOURS = {"processed": "#1a7f37", "ignored": "#8c959f", "received": "#9a6700", "failed": "#cf222e",
                    "not received": "#82071e"}


def webhook_deliveries(deliveries: pd.DataFrame | None, window_minutes: int) -> Figure:
    """Stripe's billing events over the window, stacked by what the app made of each (processed ... not received)."""
    if deliveries is None or deliveries.empty:
        return _nothing(f"Webhook deliveries: no billing events in the last {window_minutes} min")
    step = max(1, window_minutes // 30)
    counts = (deliveries.assign(at=deliveries["created"].dt.floor(f"{step}min"))
              .pivot_table(index="at", columns="status", values="id", aggfunc="count", fill_value=0))
    fig, axis = _subplots(figsize=(10, 3))
    counts.plot.bar(stacked=True, ax=axis, width=0.9, color=[DELIVERY_COLOURS.get(c, "#4c72b0") for c in counts])
    axis.set(title=f"Stripe billing events per {step} min, by the app's record of them", xlabel="", ylabel="events")
    axis.set_xticklabels([t.strftime("%H:%M") for t in counts.index], rotation=0, fontsize=8)
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize=8, title="app status")
    fig.tight_layout()
    return fig


def failed_payments(failed: pd.DataFrame | None) -> Figure:
    """Failed invoice payments by reason (a decline wave shows as one tall bar)."""
    if failed is None or failed.empty:
        return _nothing("Failed payments: none in the window")
    data = failed["reason"].value_counts().sort_values()
    fig, axis = _subplots(figsize=(8, max(2, 0.4 * len(data) + 1)))
    data.plot.barh(ax=axis, color="#cf222e")
    axis.set(title="failed payments by reason", xlabel="invoices", ylabel="")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def error_rate(minutes: pd.DataFrame, rule: dict[str, Any], compared: pd.DataFrame | None = None) -> Figure:
    """5xx rate per minute (minutes with too few requests greyed), the 1 % alert line, and each deployment that
    went live in the window as a vertical line."""
    if minutes.empty:
        return _nothing("Error rate: no requests in the window")
    fig, axis = _subplots(figsize=(11, 3.4))
    judged = minutes[minutes["judged"]]
    axis.bar(minutes["minute"], 100 * minutes["rate"], width=1 / 1440 * 0.9,
             color=["#cf222e" if over else ("#4c72b0" if ok else "#d0d7de")
                    for over, ok in zip(minutes["over"], minutes["judged"], strict=True)])
    axis.axhline(100 * rule["critical"], color="#cf222e", ls="--", lw=1,
                 label=f"alert: > {100 * rule['critical']:.0f}% for {rule['window_minutes']} min")
    for row in (compared if compared is not None else pd.DataFrame()).itertuples(index=False):
        axis.axvline(row.live_at, color="#9a6700", lw=1.5)
        axis.annotate(f" {row.deployment[:12]}", (row.live_at, axis.get_ylim()[1] * 0.9), color="#9a6700", fontsize=8)
    axis.set(title=f"5xx error rate per minute ({len(judged)} of {len(minutes)} minutes with enough requests)",
             ylabel="% of requests", xlabel="UTC")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def key_metrics(panels: list[tuple[Any, pd.DataFrame]]) -> Figure:
    """One row per key metric (checks.monitoring.Metric and its judged minutes): the value per minute, red where
    it is past the alert line (or below the signup target), grey where too few samples to judge, with the target
    and alert lines."""
    if not panels or panels[0][1].empty or panels[0][1].attrs.get("error"):
        return _nothing("Key metrics: the request log could not be read (database); see the findings")
    fig, axes = _subplots(len(panels), 1, figsize=(11, 1.8 * len(panels)), sharex=True)
    fig.set_dpi(80)   # five panels at the usual 100 dpi made a 190 KB report; issue 10's bound is 150 KB
    for axis, (metric, frame) in zip(axes, panels, strict=True):
        shown = frame[frame["value"].notna()]
        judged = shown[shown["judged"]]
        bad = judged[judged["over"] if metric.alert is not None else judged["over_target"]]
        axis.plot(frame["minute"], frame["value"].where(frame["judged"]), color="#4c72b0", lw=1,
                  label="judged")   # a minute not judged breaks the line
        axis.scatter(shown.loc[~shown["judged"], "minute"], shown.loc[~shown["judged"], "value"], s=8,
                     color="#afb8c1", label="too few samples")
        axis.scatter(bad["minute"], bad["value"], s=14, color="#cf222e", zorder=3, label="past the line")
        axis.axhline(metric.target, color="#9a6700", ls="--", lw=1, label=f"target {metric.target:g} {metric.unit}")
        if metric.alert is not None:
            axis.axhline(metric.alert, color="#cf222e", ls="--", lw=1, label=f"alert: {metric.rule}")
        if metric.unit == "ms":
            top = max(shown["value"].max() if len(shown) else 1, (metric.alert or metric.target)) * 2
            axis.set(yscale="log", ylim=(max(min(shown["value"].min() if len(shown) else 1, 1), 0.5), top))
            _log_ms(axis.yaxis)
        else:
            axis.set_ylim(0, 105 if metric.below else max(shown["value"].max() if len(shown) else 0,
                                                          2 * (metric.alert or metric.target)) * 1.15)
        axis.set_title(f"{metric.title}: {int(frame['judged'].sum())} of {len(frame)} minutes judged "
                       f"(>= {metric.least:g} samples)", fontsize=9, loc="left")
        axis.set_ylabel(metric.unit)
        axis.grid(alpha=0.3, which="both", axis="y")
        axis.legend(fontsize=7, loc="upper left", ncol=5)
    axes[-1].set_xlabel("UTC")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def pending_ages(pending: pd.DataFrame, stuck_minutes: float) -> Figure:
    """How long each pending workflow execution has waited (minutes), oldest first, against the stuck line."""
    if pending.empty:
        return _nothing("Workflow queue: no execution is pending")
    fig, axis = _subplots(figsize=(11, 3.0))
    minutes = pending["wait_s"] / 60
    axis.bar(range(len(pending)), minutes, color=["#cf222e" if m > stuck_minutes else "#4c72b0" for m in minutes])
    axis.axhline(stuck_minutes, color="#9a6700", ls="--", lw=1, label=f"stuck: pending > {stuck_minutes:g} min")
    axis.set(title=f"Pending executions, oldest first ({len(pending)} shown)", xlabel="execution (oldest first)",
             ylabel="minutes waiting")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def incident_timeline(minutes: pd.DataFrame, events: pd.DataFrame) -> Figure:
    """Requests per minute (left axis) with 5xx answers and error_logs rows per minute (right axis), and each
    event (a deployment going live, the API falling silent, this check) as a numbered vertical marker."""
    if minutes.empty or minutes.attrs.get("error"):
        return _nothing("Timeline: the request and error history could not be read (database); see the events table")
    fig, axis = _subplots(figsize=(11, 3.6))
    axis.plot(minutes["minute"], minutes["requests"], color="#4c72b0", lw=1.5, label="requests / min")
    axis.set(ylabel="requests per minute", xlabel="UTC")
    axis.set_ylim(bottom=0)
    errors = axis.twinx()
    errors.bar(minutes["minute"], minutes["errors_5xx"], width=1 / 1440 * 0.8, color="#cf222e", alpha=0.7,
               label="5xx answers / min")
    errors.plot(minutes["minute"], minutes["error_logs"], color="#9a6700", lw=1, marker=".", ms=3,
                label="error_logs / min")
    errors.set_ylabel("errors per minute")
    errors.set_ylim(bottom=0, top=max(1, minutes[["errors_5xx", "error_logs"]].to_numpy().max()) * 1.3)
    errors.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = axis.get_ylim()[1] or 1
    for number, row in enumerate(events.itertuples(index=False), start=1):
        colour = "#57606a" if row.event == "this check" else "#8250df"
        axis.axvline(row.at, color=colour, ls=":", lw=1.2)
        axis.annotate(str(number), (row.at, top * 0.95), color=colour, fontsize=8, ha="center",
                      bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": colour})
    lines = axis.get_legend_handles_labels()
    bars = errors.get_legend_handles_labels()
    axis.legend(lines[0] + bars[0], lines[1] + bars[1], fontsize=8, loc="upper left")
    axis.set_title(f"Last {len(minutes)} minutes: traffic, server errors and error logs (numbers: events table)")
    axis.grid(alpha=0.3, axis="y")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


STATUS_CLASS_COLOURS = {"2xx": "#1a7f37", "3xx": "#8c959f", "4xx": "#9a6700", "5xx": "#cf222e"}


def user_requests(requests: pd.DataFrame, window_minutes: int) -> Figure:
    """One user's API requests over the window, stacked by status class (when they hit errors, and which)."""
    if requests.empty:
        return _nothing(f"Requests: none by this user in the last {window_minutes} min")
    step = max(1, window_minutes // 24)
    frame = requests.assign(at=pd.to_datetime(requests["created_at"], utc=True).dt.floor(f"{step}min"),
                            status_class=(requests["status"] // 100).astype(str) + "xx")
    counts = frame.pivot_table(index="at", columns="status_class", values="path", aggfunc="count", fill_value=0)
    end = pd.Timestamp.now(tz="UTC").floor(f"{step}min")
    bins = pd.date_range(end - pd.Timedelta(minutes=step * (window_minutes // step)), end, freq=f"{step}min")
    counts = counts.reindex(bins.union(counts.index), fill_value=0)
    counts.index = counts.index.strftime("%m-%d %H:%M")     # categories: one bar each, at 0..n-1
    fig, axis = _subplots(figsize=(10, 2.6))
    counts.plot.bar(stacked=True, ax=axis, width=0.9,
                    color=[STATUS_CLASS_COLOURS.get(c, "#4c72b0") for c in counts])
    axis.set(title=f"this user's requests per {step} min (UTC), by status", xlabel="", ylabel="requests")
    every = max(1, len(counts) // 8)
    axis.set_xticks(range(0, len(counts), every))
    axis.set_xticklabels(counts.index[::every], rotation=0, fontsize=8)
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _nothing(message: str) -> Figure:
    fig, axis = _subplots(figsize=(6, 0.8))
    axis.axis("off")
    axis.text(0.01, 0.5, message, va="center")
    return fig
