"""Runner overhead: `aias-runbooks run health-check` next to a bare papermill run of a one-cell notebook.

Prints a table of median wall times over N runs (default 3) and their ratio to bare papermill, plus one
timing of a second `make demo`. Runs against the sandbox (started if needed). Usage:
    .venv/bin/python benchmarks/overhead.py [N] [--no-demo]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(argv: list[str], cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1, 2):
        raise SystemExit(f"{argv} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def one_cell_notebook(folder: Path) -> Path:
    """The baseline: papermill starting a kernel and running `print('hello')`."""
    path = folder / "one-cell.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 3))
    subprocess.run([BIN / "aias-runbooks", "sandbox", "up"], cwd=ROOT, check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="aias-bench-"))
    one_cell = one_cell_notebook(work)
    cases = {
        "bare papermill, one-cell notebook": [BIN / "papermill", one_cell, work / "out.ipynb", "-k", "python3"],
        "run health-check (defaults: 20 samples, 100 ms apart)":
            [BIN / "aias-runbooks", "run", "health-check", "--output", work / "output"],
        "run health-check (10 samples, no pause)":
            [BIN / "aias-runbooks", "run", "health-check", "-p", "samples=10", "-p", "interval_ms=0",
             "--output", work / "output"],
    }
    rows = []
    for name, argv in cases.items():
        times = [timed([str(a) for a in argv]) for _ in range(n)]
        rows.append({"case": name, "runs": n, "median_s": statistics.median(times)})
    if "--no-demo" not in sys.argv:
        rows.append({"case": "second `make demo`", "runs": 1, "median_s": timed(["make", "demo"])})
    table = pd.DataFrame(rows)
    table["ratio_to_bare"] = table["median_s"] / table.loc[0, "median_s"]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
