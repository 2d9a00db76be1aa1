"""`make demo-alert`: one alert -> run -> page -> resolve, on the sandbox, with params/routes.yaml.

The sandbox goes to scenario error-spike-after-deploy; `serve` starts on a free port; the sandbox's alert source
posts HighErrorRate as Alertmanager would; serve runs high-error-rate and pages the sandbox's PagerDuty with the
report; the scenario is cleared and the alert resolved, which resolves the incident; serve is stopped (SIGTERM).
Each step is one line; the sandbox stays up (`aias-runbooks sandbox down` stops it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import notify, paths
from ..alerts.model import Alert
from ..sandbox import alerts, processes

CLI = [sys.executable, "-m", "aias_runbooks.cli"]
WAIT_S = 300


def _until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo-alert: timed out after {WAIT_S} s waiting for {what}")
        time.sleep(0.2)


def _events(key: str) -> list[dict]:
    state = json.loads((paths.sandbox_dir() / "services.json").read_text())
    return [e for e in state.get("pagerduty_events", []) if e["dedup_key"] == key]


def _echo(serve: subprocess.Popen, lines: list[str]) -> None:
    """serve's lines, kept and shown as they come."""
    for line in serve.stdout:
        lines.append(line.rstrip())
        print(f"  serve: {lines[-1]}", flush=True)


def main() -> int:
    subprocess.run([*CLI, "sandbox", "up", "--scenario", "error-spike-after-deploy"], check=True)
    port = next(p for p in range(8087, 8200) if processes.port_free(p))
    lines: list[str] = []
    serve = subprocess.Popen([*CLI, "serve", "--port", str(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=_echo, args=(serve, lines), daemon=True).start()
    try:
        _until(lambda: any("serving on" in line for line in lines) or serve.poll() is not None, "serve")
        if serve.poll() is not None:
            return 3
        url = f"http://127.0.0.1:{port}"
        group = alerts.payload("error-spike", alerts.scenario_since())["groupKey"]
        group_id = Alert("alertmanager", "", "", group, "firing").group_id
        key = notify.dedup_key("sandbox", f"route/error-spike/{group_id}")
        before = len(_events(key))   # an earlier demo's events on this sandbox
        for line in alerts.post("error-spike", to=url):
            print(f"alert posted: {line}")
        _until(lambda: len(_events(key)) > before, "the page")
        trigger = _events(key)[before]
        print(f"paged: {trigger['payload']['summary']}\n  report: {trigger['links'][0]['href']}")
        subprocess.run([*CLI, "sandbox", "up", "--scenario", "healthy"], check=True)
        for line in alerts.post("error-spike", resolve=True, to=url):
            print(f"alert posted: {line}")
        _until(lambda: len(_events(key)) > before + 1, "the resolve")
        print(f"resolved: {_events(key)[-1]['applied']}")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(WAIT_S)
    print(f"audit log: {Path(paths.output_dir()) / '.serve' / 'audit.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
