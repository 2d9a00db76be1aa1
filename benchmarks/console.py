"""The console on a big archive (issue 23's figures): the runs page of a 50,000-run archive (first byte under
200 ms, page under 300 KB) and two runs compared (under 300 ms), plus the other read-only pages, over real HTTP
from a real `aias-runbooks serve`.

The archive: N runs (default 50,000) over 100 days, each with a small report folder and verdict.json, written as
records and rebuilt (catalog.rebuild: what every filing keeps, made at once, as benchmarks/archive.py does), then
the newest FILED runs filed one by one with catalog.file_run, so index.json is a filing's. Each page is fetched
REPEAT times; the table shows medians.

Usage: .venv/bin/python benchmarks/console.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aias_runbooks.runner import catalog  # noqa: E402
from tests.console.server import start  # noqa: E402  (serve with the console, its users and tokens)

RUNBOOKS = ["health-check", "database-health", "high-error-rate", "database-connection-errors"]
STATUSES = ["OK"] * 17 + ["WARNING", "CRITICAL", "UNKNOWN"]
REPEAT, FILED = 15, 20
TARGETS = {"runs page": (0.200, 300_000), "compare": (0.300, None)}


def record(i: int, total: int, now: datetime, root: Path) -> dict:
    """Run i of `total`: its report folder (verdict.json) written, its record returned."""
    started = now - timedelta(seconds=int((total - i) * 100 * 86400 / total))
    runbook, status = RUNBOOKS[i % 4], STATUSES[i % 20]
    incident = "INC-BENCH" if i % (total // 40) == 0 else None
    rel = f"{started:%Y-%m-%d}/{started:%H%M%S}_{runbook}_sandbox{'_' + incident if incident else ''}-{i}"
    run_id = f"{started:%Y%m%d-%H%M%S}-{i % 65536:04x}"
    code = "API_DOWN" if status == "CRITICAL" else "API_LATENCY_OK"
    findings = [{"code": code, "severity": status if status != "UNKNOWN" else "OK", "title": f"check {i}",
                 "evidence": {"p95_ms": float(i % 97)},
                 "measures": [{"name": "p95_ms", "value": float(i % 97), "unit": "ms"}]}]
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "verdict.json").write_text(json.dumps({
        "runbook": runbook, "env": "sandbox", "run_id": run_id, "status": status, "summary": f"{status}: check {i}",
        "findings": findings, "provenance": {"run_id": run_id, "parameters": {"samples": 20}}}))
    (folder / "report.html").write_text(f"<!doctype html><title>{run_id}</title><p>{status}</p>")
    return {"run_id": run_id, "runbook": runbook, "env": "sandbox", "incident": incident, "status": status,
            "exit_code": 0, "summary": f"{status}: check {i}", "top_finding": code if status != "OK" else None,
            "codes": [code], "started_at": started.isoformat(), "finished_at": started.isoformat(), "duration_s": 3.1,
            "report_dir": rel, "redactions": 0, "error": None, "entry": None, "host": "bench"}


def make_archive(root: Path, total: int) -> list[dict]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    records = [record(i, total, now, root) for i in range(total)]
    for run in records[:-FILED]:
        path = root / catalog.record_path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    catalog.rebuild(root)
    for run in records[-FILED:]:
        catalog.file_run(root, run)
    return records


def fetch(client: httpx.Client, path: str) -> tuple[float, float, int, int]:
    """(seconds to the first byte of the body, seconds to the whole page, bytes, status)."""
    begun = time.perf_counter()
    with client.stream("GET", path) as answer:
        first = None
        size = 0
        for chunk in answer.iter_raw():
            first = first if first is not None else time.perf_counter() - begun
            size += len(chunk)
        whole = time.perf_counter() - begun
    return first if first is not None else whole, whole, size, answer.status_code


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory(prefix="aias-bench-console-") as tmp:
        archive = Path(tmp) / "archive"
        begun = time.perf_counter()
        records = make_archive(archive, total)
        made = time.perf_counter() - begun
        console = start(Path(tmp) / "serve", archive=archive)
        try:
            newest = records[-1]
            same = [r for r in records if r["runbook"] == newest["runbook"]]
            pages = [("runs page", "/console/"),
                     ("runs page, older (2nd page)", None),
                     ("runs ?status=CRITICAL", "/console/?status=CRITICAL"),
                     ("runs ?incident=INC-BENCH (40 over 100 days)", "/console/?incident=INC-BENCH"),
                     ("runs ?code=API_DOWN&since=7d", "/console/?code=API_DOWN&since=7d"),
                     ("a run", f"/console/runs/{newest['run_id']}"),
                     ("compare", f"/console/compare?a={same[-2]['run_id']}&b={newest['run_id']}"),
                     ("incident INC-BENCH", "/console/incidents/INC-BENCH"),
                     ("runbook (last 50, its numbers)", f"/console/runbooks/{newest['runbook']}")]
            rows = []
            with console.client("viewer") as client:
                first = client.get("/console/").text
                older = first.split('rel="next"')[0].rsplit('href="', 1)[-1].split('"')[0].replace("&amp;", "&")
                for label, path in pages:
                    path = path or older
                    fetch(client, path)   # warm: templates compiled, files in the page cache
                    timed = [fetch(client, path) for _ in range(REPEAT)]
                    status = timed[-1][3]
                    rows.append((label, statistics.median(t[0] for t in timed), statistics.median(t[1] for t in timed),
                                 timed[-1][2], status))
        finally:
            console.stop()
    print(f"console on an archive of {total:,} runs (made in {made:.0f} s); medians of {REPEAT} fetches, one client")
    width = max(len(r[0]) for r in rows)
    print(f"{'page':<{width}}  first byte   whole page   size       status  target")
    for label, first_byte, whole, size, status in rows:
        target = TARGETS.get(label)
        note = ""
        if target:
            ok = whole < target[0] and (target[1] is None or size < target[1])
            note = f"< {target[0] * 1000:.0f} ms" + (f", < {target[1] // 1000} KB" if target[1] else "") + \
                (" ok" if ok else " MISSED")
        print(f"{label:<{width}}  {first_byte * 1000:7.1f} ms  {whole * 1000:8.1f} ms  {size / 1000:6.1f} KB  "
              f"{status:6d}  {note}")


if __name__ == "__main__":
    main()
