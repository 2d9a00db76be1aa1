"""`make bench`: one table from one run, against issue 10's targets.

- start-up: `run health-check -p samples=10 -p interval_ms=0` against stock papermill (a virtualenv with only
  papermill and ipykernel, made once in .bench/stock-papermill) running a one-cell notebook, alternating, median
  of RUNS pairs, and the ratio pair by pair;
- peak memory of the runner and of the kernel (their largest resident set, sampled every 20 ms);
- every runbook's wall time (median of RUNS), its report sizes, the database connections it opened, at default
  scale and, unless --no-large, at large scale (a sandbox of its own in .bench/large); the two scales in turn, and
  the growth from one to the other as the median of the pairs' ratios;
- every named query's median at large scale (benchmarks/queries.py, whose EXPLAINs follow the table);
- the archive index: filing one run at 10, 1,000 (a full index page) and 50,000 runs;
- a scheduled runbook as an Airflow task against the same run from cron (benchmarks/airflow_task.py).
Usage: .venv/bin/python benchmarks/bench.py [--no-large] [RUNS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pandas as pd
import psutil

from aias_runbooks.runner import headless_kernel

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH = ROOT / ".bench"
STOCK = BENCH / "stock-papermill"
LARGE = {"AIAS_SANDBOX_DIR": str(BENCH / "large"), "AIAS_SANDBOX_PORT_BASE": "55330"}
TARGETS = {"start-up ratio": 1.5, "query ms": 50, "index ms": 50, "report KB": 150, "scale growth": 1.10}


def timed(argv: list, env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def stock_papermill() -> list:
    """The yardstick: stock papermill in its own virtualenv, a one-cell notebook, its own python3 kernel."""
    if not (STOCK / "bin" / "papermill").exists():
        subprocess.run([sys.executable, "-m", "venv", STOCK], check=True)
        subprocess.run([STOCK / "bin" / "pip", "install", "-q", "papermill", "ipykernel"], check=True,
                       capture_output=True)
        subprocess.run([STOCK / "bin" / "python", "-m", "ipykernel", "install", "--prefix", STOCK, "--name",
                        "python3"], check=True, capture_output=True)
    notebook = BENCH / "one-cell.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    return [STOCK / "bin" / "papermill", "-k", "python3", notebook, BENCH / "one-cell-out.ipynb"]


def start_up(runs: int, output: Path) -> list[dict]:
    ours = [BIN / "aias-runbooks", "run", "health-check", "-p", "samples=10", "-p", "interval_ms=0",
            "--output", output]
    stock = stock_papermill()
    for argv in (ours, stock):    # warm the page cache for both
        timed(argv)
    pairs = [(timed(ours), timed(stock)) for _ in range(runs)]
    a, b = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    return [row("start-up", "stock papermill, one-cell notebook", b, "s"),
            row("start-up", "run health-check -p samples=10 -p interval_ms=0", a, "s"),
            row("start-up", "ratio to stock papermill (median of pairs)", ratio, "x", TARGETS["start-up ratio"])]


KERNEL_MODULE = headless_kernel.__name__   # the run's kernel: python -m <this> (runner/kernelspec)


def peak_memory(output: Path) -> list[dict]:
    """The largest resident set of the runner and of its kernel during one health-check run."""
    proc = psutil.Popen([BIN / "aias-runbooks", "run", "health-check", "--output", output],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    peaks = {"runner": 0, "kernel": 0}

    def sample() -> None:
        while proc.poll() is None:
            try:
                peaks["runner"] = max(peaks["runner"], proc.memory_info().rss)
                for child in proc.children(recursive=True):
                    if KERNEL_MODULE in child.cmdline():
                        peaks["kernel"] = max(peaks["kernel"], child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=sample)
    watcher.start()
    proc.wait()
    watcher.join()
    return [row("memory", f"{who} peak RSS (health-check)", peak / 2**20, "MiB") for who, peak in peaks.items()]


def runbooks(envs: dict[str, dict], output: Path, runs: int) -> dict[str, dict[str, dict]]:
    """scale -> slug -> median wall time, status, report sizes and connections opened. With two scales, each
    runbook runs at one scale then the other, `runs` pairs in turn, and its growth is the median of the pairs'
    ratios: a drift in the machine's speed during the run moves both sides of a pair alike."""
    from aias_runbooks.catalogue import slugs
    found: dict[str, dict[str, dict]] = {scale: {} for scale in envs}
    for slug in slugs():
        times: dict[str, list[float]] = {scale: [] for scale in envs}
        folders: dict[str, Path] = {}
        for _ in range(runs):
            for scale, env in envs.items():
                start = time.perf_counter()
                done = subprocess.run([BIN / "aias-runbooks", "run", slug, "--output", output], capture_output=True,
                                      text=True, env=env, cwd=ROOT)
                times[scale].append(time.perf_counter() - start)
                folders[scale] = Path(next(line.split("report: ", 1)[1] for line in done.stdout.splitlines()
                                           if "report: " in line)).parent
        for scale, env in envs.items():
            verdict = json.loads((folders[scale] / "verdict.json").read_text())
            found[scale][slug] = {"wall_s": statistics.median(times[scale]), "status": verdict["status"],
                                  "report_kb": (folders[scale] / "report.html").stat().st_size / 1024,
                                  "notebook_kb": (folders[scale] / "notebook.ipynb").stat().st_size / 1024,
                                  "connections": _connections(env, f"aias-runbooks/{slug}/{verdict['run_id']}"[:63])}
        if len(envs) == 2:
            base, other = (times[scale] for scale in envs)
            found[list(envs)[1]][slug]["growth"] = statistics.median(b / a for a, b in zip(base, other, strict=True))
    return found


def _connections(env: dict, application: str) -> int:
    log = Path(env.get("AIAS_SANDBOX_DIR") or ROOT / ".sandbox") / "logs" / "postgres.log"
    return log.read_text(errors="replace").count(f"application_name={application}\n")


def runbook_rows(default: dict[str, dict], large: dict[str, dict] | None) -> list[dict]:
    rows = []
    for slug, d in default.items():
        rows.append(row("runbook (default scale)", f"{slug}: wall ({d['status']}, {d['connections']} connection(s))",
                        d["wall_s"], "s"))
        rows.append(row("report size", f"{slug}: report.html (notebook.ipynb {d['notebook_kb']:.0f} KB)",
                        d["report_kb"], "KB", TARGETS["report KB"]))
        if large and slug in large:
            g = large[slug]
            rows.append(row("runbook (large scale)", f"{slug}: wall ({g['status']}, {g['connections']} connection(s))",
                            g["wall_s"], "s"))
            rows.append(row("runbook (large scale)", f"{slug}: large / default (median of the pairs' ratios)",
                            g["growth"], "x", TARGETS["scale growth"]))
    return rows


def index_update() -> list[dict]:
    """Filing one run into a local archive of 10, 1,000 and 50,000 runs (median of 5); the bucket's figures are
    benchmarks/object_archive.py's."""
    from object_archive import record, seed

    from aias_runbooks.runner import catalog
    rows = []
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for history in (10, 1_000, 50_000):
        root = Path(tempfile.mkdtemp(prefix="aias-bench-index-"))
        seed(str(root), history, now)
        times = []
        for i in range(5):
            start = time.perf_counter()
            catalog.file_run(root, record(history + i, now + timedelta(seconds=i + 1)),
                             now=now + timedelta(seconds=i + 2))
            times.append(time.perf_counter() - start)
        shutil.rmtree(root, ignore_errors=True)
        rows.append(row("archive index", f"file one run at {history:,} runs", statistics.median(times) * 1000,
                        "ms", TARGETS["index ms"]))
    return rows


def airflow_task(runs: int, output: Path) -> list[dict]:
    """benchmarks/airflow_task.py's rows: Airflow from .venv-airflow (make builds it), the default sandbox."""
    import airflow_task
    return [row("airflow task", what, value, unit, target)
            for what, value, unit, target in airflow_task.measure(runs, output)]


def queries_large() -> tuple[list[dict], str]:
    """benchmarks/queries.py against the large sandbox: its medians as rows, its EXPLAINs kept for after."""
    import queries
    saved = {k: os.environ.get(k) for k in LARGE}
    os.environ.update(LARGE)
    try:
        held, table, plans = queries.measure(5)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    rows = [row("query (large scale)", r.query, r.median_ms, "ms", TARGETS["query ms"]) for r in table.itertuples()]
    return rows, held + "\n" + "".join(f"\n=== EXPLAIN (ANALYZE, BUFFERS) {name}\n{plan}\n" for name, plan in plans)


def row(section: str, what: str, value: float, unit: str, target: float | None = None) -> dict:
    met = "" if target is None else ("yes" if value <= target else "NO")
    return {"section": section, "measure": what, "median": round(value, 3 if unit in ("x",) else 2), "unit": unit,
            "target": "" if target is None else f"<= {target}", "met": met}


def sandbox(env: dict, *args: str) -> None:
    done = subprocess.run([BIN / "aias-runbooks", "sandbox", "up", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"sandbox up {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def main() -> None:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), 5))
    BENCH.mkdir(exist_ok=True)
    output = Path(tempfile.mkdtemp(prefix="aias-bench-"))
    default_env = os.environ | {"AIAS_SANDBOX_DIR": str(ROOT / ".sandbox")}
    default_env.pop("AIAS_SANDBOX_PORT_BASE", None)
    sandbox(default_env)
    rows = start_up(runs, output) + peak_memory(output)
    envs, explains = {"default": default_env}, ""
    if "--no-large" not in sys.argv:
        envs["large"] = os.environ | LARGE
        sandbox(envs["large"], "--scale", "large")
    walls = runbooks(envs, output, runs)
    default, large = walls["default"], walls.get("large")
    if large:
        query_rows, explains = queries_large()
        rows += query_rows
    rows = rows[:5] + runbook_rows(default, large) + rows[5:] + index_update() + airflow_task(runs, output)
    pd.set_option("display.max_colwidth", 90)
    print(pd.DataFrame(rows).to_string(index=False))
    if explains:
        print("\n" + explains)


if __name__ == "__main__":
    main()
