"""The archive commands on a big archive: `reports` (with and without filters), `reports prune` and `bundle`, one
table from one run. A made-up archive of N runs over 100 days (default 50,000), each with a small report folder,
and an incident of 40 runs whose folders are copies of a real report (the newest in output/, if any).

Usage: .venv/bin/python benchmarks/archive.py [N]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aias_runbooks.runner import catalog  # noqa: E402

CLI = [sys.executable, "-m", "aias_runbooks.cli"]
RUNBOOKS = ["health-check", "database-health", "high-error-rate", "database-connection-errors"]
STATUSES = ["OK"] * 17 + ["WARNING", "CRITICAL", "UNKNOWN"]
EVIDENCE = {"health-check": ("API_LATENCY_OK", "p95_ms"), "high-error-rate": ("ERROR_RATE_OK", "error_rate_pct"),
            "database-connection-errors": ("DB_POOL_OK", "usage_pct")}


def make_archive(root: Path, total: int, real: Path | None) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    records = []
    for i in range(total):
        started = now - timedelta(seconds=int((total - i) * 100 * 86400 / total))
        runbook, status = RUNBOOKS[i % 4], STATUSES[i % 20]
        incident = "INC-BENCH" if i % (total // 40) == 0 else None
        rel = f"{started:%Y-%m-%d}/{started:%H%M%S}_{runbook}_sandbox{'_' + incident if incident else ''}-{i}"
        folder = root / rel
        folder.mkdir(parents=True)
        if incident and real is not None:
            for file in real.iterdir():
                shutil.copy(file, folder / file.name)
        else:
            code, key = EVIDENCE.get(runbook, ("NONE", "none"))
            finding = {"code": code, "severity": "OK", "evidence": {key: float(i % 97)}}
            (folder / "verdict.json").write_text(json.dumps({"status": status, "findings": [finding],
                                                             "provenance": {"parameters": {}}}))
        records.append({
            "run_id": f"{started:%Y%m%d-%H%M%S}-{i % 65536:04x}", "runbook": runbook, "env": "sandbox",
            "incident": incident, "status": status, "exit_code": STATUSES.index(status) if status != "OK" else 0,
            "summary": f"{status}: 3 check(s)", "top_finding": None, "started_at": started.isoformat(),
            "finished_at": started.isoformat(), "duration_s": 3.1, "report_dir": rel, "redactions": 0,
            "error": None})
    for run in records:
        path = root / catalog.record_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    catalog.rebuild(root)


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    return time.perf_counter() - start, proc


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    reals = sorted((ROOT / "output").glob("*/*_health-check_*/verdict.json"))
    real = reals[-1].parent if reals else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="aias-bench-archive-") as tmp:
        root = Path(tmp) / "output"
        start = time.perf_counter()
        make_archive(root, total, real)
        rows.append(("make the archive (folders, records, catalog.rebuild)", time.perf_counter() - start, ""))
        start = time.perf_counter()
        catalog.rebuild(root)
        rows.append((f"catalog.rebuild: every closed day of {total:,} runs again", time.perf_counter() - start, ""))
        for label, args in [("reports (newest 100)", []), ("reports --limit 0 (every run)", ["--limit", "0"]),
                            ("reports --runbook health-check --limit 0", ["--runbook", "health-check", "--limit", "0"]),
                            ("reports --status CRITICAL --limit 0", ["--status", "CRITICAL", "--limit", "0"]),
                            ("reports --incident INC-BENCH", ["--incident", "INC-BENCH"]),
                            ("reports --since 7d --limit 0", ["--since", "7d", "--limit", "0"])]:
            seconds, proc = timed("reports", "--output", str(root), *args)
            rows.append((label, seconds, proc.stdout.strip().splitlines()[-1][:60]))
        from aias_runbooks import trends
        start = time.perf_counter()
        points = trends.points(root, "sandbox", 30, 2000)
        rows.append(("trends.points (30 days, newest 2000 runs of each)", time.perf_counter() - start,
                     f"{len(points)} point(s)"))
        seconds, proc = timed("reports", "prune", "--keep-days", "30", "--dry-run", "--output", str(root))
        rows.append(("reports prune --keep-days 30 --dry-run", seconds, proc.stdout.strip()[:60]))
        seconds, proc = timed("reports", "prune", "--keep-days", "30", "--output", str(root))
        rows.append(("reports prune --keep-days 30", seconds, proc.stdout.strip()[:90]))
        out = Path(tmp) / "bundle.zip"
        seconds, proc = timed("bundle", "--incident", "INC-BENCH", "--out", str(out), "--output", str(root))
        rows.append(("bundle --incident INC-BENCH", seconds,
                     f"{out.stat().st_size / 1e6:.1f} MB" if out.exists() else proc.stderr.strip()[:60]))
        seconds, proc = timed("bundle", "--verify", str(out))
        rows.append(("bundle --verify", seconds, proc.stdout.strip()[:40]))
    width = max(len(r[0]) for r in rows)
    print(f"archive of {total:,} runs; incident runs copied from {real or 'nothing (no real report found)'}")
    for label, seconds, note in rows:
        print(f"{label:<{width}}  {seconds:7.2f} s  {note}")


if __name__ == "__main__":
    main()
