"""`aias-runbooks serve` against issue 21's targets, on the sandbox (AIAS_SANDBOX_DIR; `sandbox up` is run, with
scenario api-down, so that health-check is CRITICAL and pages):

1. alert received -> report filed -> page sent, on a health-check route (samples=10, interval_ms=0, notify
   pagerduty): from the POST of a new group's alert to the PagerDuty emulator holding its trigger, against a plain
   `run health-check` with the same parameters; alternating, median of RUNS pairs, and the ratio pair by pair
   (target: at most 1.3x);
2. 200 alert posts a second for DURATION seconds, all duplicates of one group whose run has ended: the median and
   95th percentile reply time (target: median under 20 ms on 2 cores), and the posts answered.
Usage: .venv/bin/python benchmarks/serve.py [RUNS]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import httpx

from aias_runbooks import notify, paths
from aias_runbooks.alerts.model import Alert
from aias_runbooks.sandbox import alerts
from aias_runbooks.settings import load_environment

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "aias_runbooks.cli"]
RATE, DURATION = 200, 10
TARGETS = {"ratio": 1.3, "median ms": 20}
ROUTES = """\
serve: {environment: sandbox, max_running: 2, max_queued: 20, dedup_minutes: 30, max_body_kb: 1024}
senders:
  - {name: alertmanager, type: alertmanager, auth: bearer, secret: alertmanager_token}
routes:
  - name: bench-health
    match: {alertname: ApiDown}
    runbook: health-check
    environment: sandbox
    parameters: {samples: 10, interval_ms: 0}
    notify: {pagerduty: true}
"""


class Serve:
    def __init__(self, folder: Path, port: int) -> None:
        (folder / "routes.yaml").write_text(ROUTES)
        self.url, self.lines = f"http://127.0.0.1:{port}", []
        self.proc = subprocess.Popen([*CLI, "serve", "--routes", str(folder / "routes.yaml"), "--port", str(port),
                                      "--output", str(folder / "output")], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        until(lambda: any("serving on" in line for line in self.lines), 60, "serve to listen")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def until(condition, timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def token() -> str:
    return load_environment("sandbox").secret("alertmanager_token").reveal()


def paged(key: str) -> bool:
    state = json.loads((paths.sandbox_dir() / "services.json").read_text())
    return any(e["dedup_key"] == key and e["event_action"] == "trigger" for e in state.get("pagerduty_events", []))


def alert_to_page(serve: Serve, n: int) -> float:
    body = alerts.payload("api-down", alerts.scenario_since())
    body["groupKey"] = f'{{}}:{{alertname="ApiDown", bench="{os.getpid()}-{n}-{time.time_ns()}"}}'
    group = Alert("alertmanager", "", "", body["groupKey"], "firing").group_id
    key = notify.dedup_key("sandbox", f"route/bench-health/{group}")
    start = time.perf_counter()
    reply = httpx.post(f"{serve.url}/alerts/alertmanager", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {token()}"})
    if reply.json()["alerts"][0]["decision"] != "started":
        raise SystemExit(f"not started: {reply.text}")
    until(lambda: paged(key), 120, "the page")
    return time.perf_counter() - start


def plain_run(output: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([*CLI, "run", "health-check", "-p", "samples=10", "-p", "interval_ms=0", "--output",
                           str(output)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-500:]}")
    return time.perf_counter() - start


async def duplicates(serve: Serve) -> tuple[list[float], int]:
    """RATE posts a second for DURATION seconds, each a duplicate; reply times in ms and the posts answered 200."""
    body = alerts.payload("api-down", alerts.scenario_since())
    body["groupKey"] = f'{{}}:{{alertname="ApiDown", bench="dup-{time.time_ns()}"}}'
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token()}"},
                                     connector=aiohttp.TCPConnector(limit=64)) as session:
        async with session.post(f"{serve.url}/alerts/alertmanager", json=body) as first:
            run_id = (await first.json())["alerts"][0]["run_id"]
        until(lambda: any(f"run {run_id} filed" in line for line in serve.lines), 120, "the first run filed")
        times: list[float] = []
        ok = 0

        async def one(at: float) -> None:
            nonlocal ok
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            start = time.perf_counter()
            async with session.post(f"{serve.url}/alerts/alertmanager", json=body) as reply:
                answer = await reply.json()
            times.append((time.perf_counter() - start) * 1000)
            ok += reply.status == 200 and answer["alerts"][0]["decision"] == "duplicate"
        begin = time.perf_counter() + 0.5
        await asyncio.gather(*(one(begin + i / RATE) for i in range(RATE * DURATION)))
        return times, ok


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    subprocess.run([*CLI, "sandbox", "up", "--scenario", "api-down"], check=True, capture_output=True, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="aias-bench-serve-") as tmp:
        folder = Path(tmp)
        from aias_runbooks.sandbox.processes import port_free
        port = next(p for p in range(48087, 49000, 7) if port_free(p))
        serve = Serve(folder, port)
        try:
            plain_run(folder / "plain")   # warm the page cache for both
            alert_to_page(serve, -1)
            pairs = [(alert_to_page(serve, n), plain_run(folder / "plain")) for n in range(runs)]
            times, ok = asyncio.run(duplicates(serve))
        finally:
            serve.stop()
            subprocess.run([*CLI, "sandbox", "up", "--scenario", "healthy"], capture_output=True, cwd=ROOT)
    ratio = statistics.median(a / b for a, b in pairs)
    median, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
    rows = [("alert -> report -> page, health-check route (median)", statistics.median(a for a, _ in pairs), "s", ""),
            ("plain `run health-check` (median)", statistics.median(b for _, b in pairs), "s", ""),
            ("ratio (median of pairs)", ratio, "x", f"<= {TARGETS['ratio']}"),
            (f"{RATE} duplicate posts/s for {DURATION} s: median reply", median, "ms", f"< {TARGETS['median ms']}"),
            ("... 95th percentile reply", p95, "ms", ""),
            ("... answered 200 duplicate", ok, f"of {len(times)}", "")]
    for name, value, unit, target in rows:
        print(f"{name:<58} {value:>9.3f} {unit:<7} {target}")
    print(f"(CPU count {os.cpu_count()}; {runs} pairs)")


if __name__ == "__main__":
    main()
