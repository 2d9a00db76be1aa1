"""Charts people would rather look at than tables: latency with the playbook's target and alert lines."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def latency(samples: pd.DataFrame, rule: dict[str, Any], title: str = "Latency") -> Figure:
    """Per-sample latency (failures marked) and its histogram, on a log scale so that 5 ms and the
    1000 ms alert line are both readable."""
    fig, (series, hist) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    answered = samples[samples["status"].notna()]
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
    series.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig
