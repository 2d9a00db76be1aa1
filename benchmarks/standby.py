"""Issue 21's standby figure: a run `serve` starts on a ready standby costs at most 0.8x stock papermill.

One table: stock papermill (bench.py's yardstick: its own virtualenv, a one-cell notebook) against
`run health-check -p samples=10 -p interval_ms=0` through a ready standby (runner/standby_pool.py's Pool, as serve
uses it), timed from the request written to the process's exit; alternating, the median of RUNS pairs each, and
the ratio pair by pair (and of the fastest of each: on a machine others share, the least disturbed). A plain `run`
of the same is timed in the same turns, for comparison. Each turn waits for the next standby to be ready before it
starts, as an alert that finds serve idle would; the one after it warms up during the run, as in serve.
Usage: .venv/bin/python benchmarks/standby.py [RUNS]   (the default sandbox is brought up if it is not)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from bench import BIN, ROOT, row, sandbox, stock_papermill, timed

from aias_runbooks.runner.standby_pool import Pool

TARGET = 0.8
PARAMETERS = {"samples": 10, "interval_ms": 0}


def through_standby(pool: Pool, output: Path) -> float:
    """Seconds from the request written to a ready standby to its exit (its run filed)."""
    if not pool.wait_ready(120):
        raise SystemExit("the standby was not ready within 120 s")
    start = time.perf_counter()
    proc = pool.run("health-check", "sandbox", PARAMETERS, output=output)
    _, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"the run through the standby failed ({proc.returncode}):\n{stderr[-2000:]}")
    return elapsed


def main() -> None:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), 7))
    output = Path(tempfile.mkdtemp(prefix="aias-bench-standby-"))
    sandbox(None)
    stock = stock_papermill()
    plain = [BIN / "aias-runbooks", "run", "health-check", "-p", "samples=10", "-p", "interval_ms=0",
             "--output", output]
    pool = Pool(cwd=ROOT)
    try:
        timed(stock), timed(plain), through_standby(pool, output)   # the page cache warm for all three
        turns = [(through_standby(pool, output), timed(stock), timed(plain)) for _ in range(runs)]
    finally:
        pool.close()
    ours, yardstick, today = (statistics.median(t[i] for t in turns) for i in range(3))
    rows = [row("standby", "stock papermill, one-cell notebook", yardstick, "s"),
            row("standby", "run health-check -p samples=10 -p interval_ms=0 (plain run)", today, "s"),
            row("standby", "the same through a ready standby, request written to exit", ours, "s"),
            row("standby", "plain run / stock papermill (median of pairs)",
                statistics.median(t[2] / t[1] for t in turns), "x"),
            row("standby", "standby run / stock papermill (median of pairs)",
                statistics.median(t[0] / t[1] for t in turns), "x", TARGET),
            row("standby", "fastest standby run / fastest stock papermill (the least disturbed)",
                min(t[0] for t in turns) / min(t[1] for t in turns), "x", TARGET)]
    pd.set_option("display.max_colwidth", 90)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
