"""The archive in object storage (issue 22's figures): filing one run into a bucket of 50,000 runs (object writes,
counted by the S3 server itself, and milliseconds, median of 5), and `aias-runbooks reports` (the newest 100) on that
bucket, end to end (median of 5). The bucket is moto's S3 server on 127.0.0.1 in a process of its own (as a real
endpoint is: it does not share this process's interpreter), reached through s3fs as a real one.

Usage: .venv/bin/python benchmarks/object_archive.py [N]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aias_runbooks.runner import catalog  # noqa: E402
from aias_runbooks.runner.store import open_archive  # noqa: E402
from tests.s3 import make_bucket  # noqa: E402

CLI = [sys.executable, "-m", "aias_runbooks.cli"]
DAYS = 100


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """moto's S3 server in its own process, its access log in `log`; AWS_* variables point at it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(log, "w") as fh:
        server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                                   str(port)], stdout=fh, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def writes(log: Path, since: int) -> tuple[int, int]:
    """(object writes answered after byte `since` of the server's log, the log's length now)."""
    text = log.read_text(errors="replace")
    return len(re.findall(r'"(?:PUT|POST|DELETE) ', text[since:])), len(text)


def record(i: int, started: datetime) -> dict:
    return {"run_id": f"{started:%Y%m%d-%H%M%S}-{i % 65536:04x}", "runbook": "health-check", "env": "sandbox",
            "incident": None, "status": "OK", "exit_code": 0, "summary": "OK: 2 check(s) passed", "top_finding": None,
            "started_at": started.isoformat(), "finished_at": started.isoformat(), "duration_s": 2.0,
            "report_dir": f"{started:%Y-%m-%d}/{started:%H%M%S}_health-check_sandbox-{i % 65536:04x}",
            "redactions": 0, "error": None, "entry": None, "host": "bench"}


def seed(url: str, total: int, now: datetime) -> None:
    """`total` runs over DAYS days as filing them leaves a bucket: records, closed days' segments and pages, index."""
    archive = open_archive(url)
    runs = [record(i, now - timedelta(seconds=int((total - i) * DAYS * 86400 / total))) for i in range(total)]
    for start in range(0, total, 2000):   # s3fs writes a batch concurrently
        archive.fs.pipe({archive.path(catalog.record_path(r)): json.dumps(r).encode()
                         for r in runs[start:start + 2000]})
    by_day: dict[str, list[dict]] = {}
    for run in runs:
        by_day.setdefault(run["started_at"][:10], []).append(run)
    last_closed = f"{now - timedelta(days=catalog.CLOSED_AFTER_DAYS):%Y-%m-%d}"
    segments: dict = {}
    for day, day_runs in by_day.items():
        if day <= last_closed:
            catalog.close_day(archive, day, segments, runs=day_runs)
    catalog.reindex(archive)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp) / "moto.log") as _:
        log = Path(tmp) / "moto.log"
        url = f"s3://{make_bucket()}/reports"
        start = time.perf_counter()
        seed(url, total, now)
        made = time.perf_counter() - start
        costs, times = [], []
        for n in range(5):
            time.sleep(0.5)   # the server's log is written after it answers: the last filing's lines are in
            _, mark = writes(log, 0)
            run = record(total + n, now + timedelta(seconds=n + 1))
            start = time.perf_counter()
            catalog.file_run(url, run, now=now + timedelta(seconds=n + 2))
            times.append(time.perf_counter() - start)
            time.sleep(0.5)
            costs.append(writes(log, mark)[0])
        listing = []
        for _ in range(5):
            start = time.perf_counter()
            proc = subprocess.run([*CLI, "reports", "--archive", url], capture_output=True, text=True,
                                  env=os.environ.copy(), timeout=120)
            listing.append(time.perf_counter() - start)
        assert proc.returncode == 0 and f"100 of {total + 5}" in proc.stdout, proc.stdout[-300:] + proc.stderr
    print(f"bucket of {total:,} runs over {DAYS} days (moto's S3 server), made in {made:.0f} s")
    print(f"{'what':<52} {'median':>9} {'max':>9}  target")
    print(f"{'file one run: object writes':<52} {statistics.median(costs):>9.0f} {max(costs):>9.0f}  <= 5")
    print(f"{'file one run: ms':<52} {statistics.median(times) * 1000:>9.1f} "
          f"{max(times) * 1000:>9.1f}  < 100")
    print(f"{'aias-runbooks reports (newest 100), whole command: s':<52} {statistics.median(listing):>9.2f} "
          f"{max(listing):>9.2f}  < 1")


if __name__ == "__main__":
    main()
