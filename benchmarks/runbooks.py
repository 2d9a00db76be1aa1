"""Every runbook against the healthy sandbox: median wall time of `aias-runbooks run`, its ratio to a bare
papermill run of a one-cell notebook, and how many database connections each run opened (counted from the
server's log_connections lines for the run's application_name). Usage:
    .venv/bin/python benchmarks/runbooks.py [N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from overhead import BIN, ROOT, one_cell_notebook, timed

from aias_runbooks import paths
from aias_runbooks.runner.parameterize import runbook_slugs


def run_once(slug: str, output: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([BIN / "aias-runbooks", "run", slug, "--output", output], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    folder = Path(next(line.split("report: ", 1)[1] for line in proc.stdout.splitlines() if "report: " in line))
    run_id = json.loads((folder.parent / "verdict.json").read_text())["run_id"]
    app = f"aias-runbooks/{slug}/{run_id}"[:63]
    log = (paths.sandbox_dir() / "logs" / "postgres.log").read_text()
    return elapsed, log.count(f"application_name={app}\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    subprocess.run([BIN / "aias-runbooks", "sandbox", "up"], cwd=ROOT, check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="aias-bench-"))
    bare_argv = [BIN / "papermill", one_cell_notebook(work), work / "out.ipynb", "-k", "python3"]
    bare = statistics.median(timed([str(a) for a in bare_argv]) for _ in range(n))
    rows = [{"runbook": "(bare papermill, one cell)", "median_s": bare, "connections_opened": 0}]
    for slug in runbook_slugs():
        samples = [run_once(slug, work / "output") for _ in range(n)]
        rows.append({"runbook": slug, "median_s": statistics.median(s[0] for s in samples),
                     "connections_opened": max(s[1] for s in samples)})
    table = pd.DataFrame(rows)
    table["ratio_to_bare"] = table["median_s"] / bare
    table.insert(1, "runs", n)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
