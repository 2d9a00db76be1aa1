"""Background processes the sandbox starts, recorded so that `down` stops exactly those and nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Start argv detached, output to log; returns the record (pid + create time) that identifies it later."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, **kwargs)
    return record_of(proc.pid) | {"log": str(log)}


def record_of(pid: int) -> dict[str, Any]:
    """What identifies a process later: its pid and its start (a reused pid has another start)."""
    return {"pid": pid, "create_time": psutil.Process(pid).create_time(), "start_ticks": start_ticks(pid)}


def start_ticks(pid: int) -> int | None:
    """The process's start in clock ticks after boot (field 22 of /proc/PID/stat), or None off Linux.

    Unlike psutil's create_time, which Linux derives from the wall clock's current idea of the boot time
    (psutil issues 2526, 2541), it never moves: a clock step or an NTP correction on a busy machine shifted
    create_time by a second and made every running sandbox process look dead to `up` and `down`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def alive(record: dict[str, Any] | None) -> bool:
    """True when the recorded process still runs (same pid *and* start, so a reused pid is not ours)."""
    if not record or not record.get("pid"):
        return False
    try:
        proc = psutil.Process(record["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if record.get("start_ticks") is not None:
            return start_ticks(record["pid"]) == record["start_ticks"]
        return abs(proc.create_time() - record["create_time"]) < 1
    except psutil.Error:
        return False


def stop(record: dict[str, Any] | None, timeout: float = 10) -> bool:
    """SIGTERM the recorded process (then SIGKILL after timeout); False if it was not running."""
    if not alive(record):
        return False
    proc = psutil.Process(record["pid"])
    proc.terminate()
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    return True


def start_ready(folder: Path, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module *args READY_FILE` (output to logs/<name>.log) and wait until it touches READY_FILE
    (<name>.ready in folder): its sessions or its first heartbeat are in place."""
    ready = folder / f"{name}.ready"
    ready.unlink(missing_ok=True)
    record = spawn([sys.executable, "-m", module, *args, str(ready)], folder / "logs" / f"{name}.log", env=env)
    wait_until(ready.exists, record, f"sandbox {name}", timeout=60)
    return record


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(ready: Callable[[], bool], record: dict[str, Any] | None, what: str, timeout: float = 30) -> None:
    """Poll ready() until true; fail fast with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if record is not None and not alive(record):
            raise RuntimeError(f"{what} exited during start-up:\n{tail(record.get('log'))}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f} s:\n{tail(record and record.get('log'))}")


def tail(log: str | None, lines: int = 15) -> str:
    if not log or not os.path.exists(log):
        return "(no log)"
    return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])


def sandbox_env(folder: Path) -> dict[str, str]:
    """The sandbox folder's sandbox.env: the URLs and generated secrets `sandbox up` wrote."""
    from dotenv import dotenv_values
    return {k: v for k, v in dotenv_values(folder / "sandbox.env").items() if v is not None}


def component_env(folder: Path) -> dict[str, str]:
    """A sandbox process's environment: ours, the sandbox's URLs and secrets, and no GSSAPI in libpq (its
    Kerberos set-up is not thread-safe: a connect in one thread beside a query in another can segfault,
    psycopg issues 1213/1229; the workloads connect from threads, and a local server has no Kerberos)."""
    return os.environ | sandbox_env(folder) | {"PGGSSENCMODE": "disable"}


def http_ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    """True when url answers 200 within a second: an HTTP component is ready."""
    try:
        return httpx.get(url, auth=auth, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def serve(make_app: Callable[[Path], Any], description: str) -> None:
    """Run one of the sandbox's HTTP components: `--port N --state-dir D`, on 127.0.0.1, quiet unless it errs."""
    import argparse
    import logging

    from aiohttp import web

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    web.run_app(make_app(args.state_dir), host="127.0.0.1", port=args.port, access_log=None, print=None)
