"""Run several runbooks at once: each in its own `aias-runbooks run` process, at most `parallel` at a time.

A run is a process of its own (its kernel is one more), so runs share nothing but the archive, whose writers
already lock (catalog.append_run). SIGTERM, SIGINT or SIGHUP to the caller is passed on to every running child
as one SIGTERM (the runner stops its notebook and still files the partial report) and no further run starts;
further signals are ignored until the children are done, so their reports and exit codes are never lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import is_remote, open_archive

UNKNOWN = 3
# Worst first, as verdicts rank: a known problem outranks a blind spot, which outranks OK.
_RANK = {0: 0, 3: 1, 1: 2, 2: 3}
_STATUS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
NOT_RUN = "NOT RUN"


@dataclass(frozen=True)
class Job:
    """One run to make: checked parameters (prepare()'s), as `aias-runbooks run` takes them."""

    runbook: str
    env: str = "sandbox"
    parameters: dict[str, Any] = field(default_factory=dict)
    incident: str | None = None
    archive: str | None = None   # --archive: where the report is filed (a folder or s3://bucket/prefix)
    entry: str | None = None     # --entry: the schedule entry the run stands for


@dataclass
class Outcome:
    job: Job
    exit_code: int
    status: str
    summary: str
    top_finding: str | None = None
    report: str | None = None    # report.html: a local path, or an s3:// URL
    stderr: str = ""
    seconds: float = 0.0
    run_id: str | None = None    # the run's id, from its filed verdict


def worst(codes: list[int]) -> int:
    """The worst exit code, ranked as verdicts are: 2 CRITICAL > 1 WARNING > 3 UNKNOWN > 0 OK (0 for none).

    A code outside 0-3 (a child killed outright) counts as 3."""
    known = [c if c in _RANK else UNKNOWN for c in codes]
    return max(known, key=_RANK.__getitem__, default=0)


def command(job: Job, output: Path | None) -> list[str]:
    """The `aias-runbooks run` command line for a job (values written so the runner reads them back as they are)."""
    args = [sys.executable, "-m", "aias_runbooks.cli", "run", job.runbook, "--env", job.env]
    for name, value in job.parameters.items():
        text = ("true" if value else "false") if isinstance(value, bool) else repr(value) \
            if isinstance(value, float) else str(value)
        args += ["-p", f"{name}={text}"]
    if job.incident:
        args += ["--incident", job.incident]
    if job.archive:
        args += ["--archive", job.archive]
    if job.entry:
        args += ["--entry", job.entry]
    if output is not None:
        args += ["--output", str(output)]
    return args


def run_jobs(jobs: list[Job], output: Path | None = None, parallel: int | None = None,
             on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every job, at most `parallel` (default: the CPU count) at once; outcomes in the jobs' order.

    A job not started because the caller was stopped is NOT RUN (exit 3). `on_done` is called (in a worker
    thread) as each job ends, not-run ones included.
    """
    parallel = max(1, parallel or os.cpu_count() or 1)
    live: set[subprocess.Popen] = set()
    lock = threading.Lock()
    stopped = threading.Event()

    def one(job: Job) -> Outcome:
        outcome = _not_run(job)
        try:
            if not stopped.is_set():
                outcome = _run(job, output, live, lock, stopped)
        finally:
            if on_done is not None:
                on_done(outcome)
        return outcome

    with _forward_signals(live, lock, stopped), ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, job) for job in jobs]
        while not all(f.done() for f in futures):   # polled, so a signal handler runs promptly in this thread
            time.sleep(0.1)
        return [f.result() for f in futures]


def _run(job: Job, output: Path | None, live: set, lock: threading.Lock, stopped: threading.Event) -> Outcome:
    started = time.monotonic()
    with lock:
        if stopped.is_set():
            return _not_run(job)
        # A session of its own: the signal reaches it once, from us, whoever sent ours (terminal or scheduler).
        proc = subprocess.Popen(command(job, output), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        live.add(proc)
    try:
        stdout, stderr = proc.communicate()
    finally:
        with lock:
            live.discard(proc)
    return _outcome(job, proc.returncode, stdout, stderr, time.monotonic() - started)


def _outcome(job: Job, code: int, stdout: str, stderr: str, seconds: float) -> Outcome:
    """What the child said: its summary line (without the performance data `run` prints after " | "), report
    folder and the top finding from its verdict.json."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    report = next((line.split("report: ", 1)[1].strip() for line in lines if "report: " in line), None)
    errors = [line for line in stderr.splitlines() if line.strip()]
    summary = lines[0].split(" | ", 1)[0] if lines and report is not None else \
        (errors[-1] if errors else f"exit code {code}")
    top, status, run_id = None, _STATUS.get(code, "UNKNOWN"), None
    if report is not None and (verdict := filed_verdict(report)):
        status = verdict.get("status", status)
        top = _top(verdict.get("findings") or [])
        run_id = verdict.get("run_id")
    return Outcome(job, code if code in _STATUS else UNKNOWN, status, summary, top, report, stderr, seconds, run_id)


def filed_verdict(report: str) -> dict[str, Any]:
    """The verdict.json beside a report.html `run` printed (a local path or an s3:// URL); {} when unreadable."""
    folder = report.rsplit("/", 1)[0]
    try:
        if is_remote(folder):
            data = open_archive(folder).read("verdict.json")
        else:
            data = (Path(folder) / "verdict.json").read_bytes()
        verdict = json.loads(data)
    except Exception:  # noqa: BLE001 - a missing file, a bucket's own errors: the exit code still says the status
        return {}
    return verdict if isinstance(verdict, dict) else {}


def ranked(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """verdict.json's findings worst first, as Verdict ranks them (CRITICAL > WARNING > UNKNOWN > OK)."""
    rank = {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}
    return sorted(findings, key=lambda f: rank.get(f.get("severity"), 0), reverse=True)


def _top(findings: list[dict[str, Any]]) -> str | None:
    """The worst finding's code, as Verdict.top picks it (None when all are OK)."""
    worst_first = ranked(findings)
    return worst_first[0].get("code") if worst_first and worst_first[0].get("severity") != "OK" else None


def _not_run(job: Job) -> Outcome:
    return Outcome(job, UNKNOWN, NOT_RUN, "not started: stopped before its turn")


@contextmanager
def _forward_signals(live: set, lock: threading.Lock, stopped: threading.Event) -> Iterator[None]:
    """The first SIGTERM, SIGINT or SIGHUP: SIGTERM to each running child, and nothing more starts."""
    def stop(signum, frame) -> None:
        if stopped.is_set():
            return
        stopped.set()
        with lock:
            for proc in live:
                with suppress(OSError):   # it ended meanwhile
                    proc.send_signal(signal.SIGTERM)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
