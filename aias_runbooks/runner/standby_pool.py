"""serve's side of the warm standbys (runner/standby.py): Pool keeps one started, and request_line writes the one
request a standby reads. Apart from the standby's own module, which imports the CLI to run as `run`, so that the
server imports no entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODULE = "aias_runbooks.runner.standby"   # what a standby runs as: python -m MODULE
READY = b"ready\n"          # written on --ready-fd once the kernel answers (its warm-up done)


def request_line(runbook: str, env: str = "sandbox", parameters: Mapping[str, Any] | None = None,
                 incident: str | None = None, operator: str | None = None, output: Path | None = None,
                 run_id: str | None = None, cell_timeout: int | None = None) -> bytes:
    """The request a standby reads: parameters as `run -p` text (a Job's checked values written back as text)."""
    params = {name: _as_text(value) for name, value in (parameters or {}).items()}
    request = {"runbook": runbook, "env": env, "parameters": params, "incident": incident, "operator": operator,
               "output": None if output is None else str(Path(output).absolute()), "run_id": run_id}
    if cell_timeout is not None:
        request["cell_timeout"] = cell_timeout
    return json.dumps(request).encode() + b"\n"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _is_standby(pid: int) -> bool:
    """Whether a standby runs as `pid` (not a zombie, not another program that got its pid since)."""
    try:
        return MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Pool:
    """One standby process kept ready: take() hands it over and the next one starts at once.

    Each process runs one run with its own fresh kernel, never reused. The processes are children of this one
    (they die with it), in sessions of their own (a signal reaches a run once, from whoever owns it), with stdout
    and stderr piped as a `run` started by subprocess would be. They are all started from one thread of the
    pool's, which lives until close(): Linux delivers the parent-death signal when the *thread* that started a
    child ends, so a caller's short-lived worker thread must not be the one.
    """

    def __init__(self, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.cwd, self.env = cwd, dict(env) if env is not None else None
        self._changed = threading.Condition()
        self._next: tuple[subprocess.Popen, int] | None = None
        self._failed: OSError | None = None
        self._closed = False
        from .kernel import remove_standby_sockets
        remove_standby_sockets(_is_standby)   # the folders of standbys killed with an earlier serve
        self._starter = threading.Thread(target=self._keep_one, name="standby-starter", daemon=True)
        self._starter.start()

    def _keep_one(self) -> None:
        """The starter thread: a standby in waiting whenever there is none, until the pool is closed; then it
        idles for as long as the process lives, so the runs it started keep their parent thread."""
        with self._changed:
            while True:
                self._changed.wait_for(lambda: not self._closed and self._next is None and self._failed is None)
                try:
                    self._next = self._spawn()
                except OSError as exc:   # out of processes or file descriptors: take() says so
                    self._failed = exc
                self._changed.notify_all()

    def _spawn(self) -> tuple[subprocess.Popen, int]:
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", MODULE, "--parent", str(os.getpid()), "--ready-fd", str(write)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                pass_fds=(write,), start_new_session=True, cwd=self.cwd, env=self.env)
        except OSError:
            os.close(read)
            raise
        finally:
            os.close(write)
        return proc, read

    def _waiting(self) -> tuple[subprocess.Popen, int]:
        """The standby in waiting (the caller holds the lock); OSError if it could not be started."""
        self._changed.wait_for(lambda: self._closed or self._next is not None or self._failed is not None)
        if self._closed:
            raise RuntimeError("the standby pool is closed")
        if self._failed is not None:
            failed, self._failed = self._failed, None
            self._changed.notify_all()   # try again for the next take
            raise failed
        assert self._next is not None
        return self._next

    def wait_ready(self, timeout: float) -> bool:
        """Whether the standby in waiting is ready (its kernel warm) within `timeout` seconds."""
        import select
        with self._changed:
            proc, read = self._waiting()
            watch = os.dup(read)   # take() may close the pool's copy meanwhile
        try:
            readable, _, _ = select.select([watch], [], [], timeout)
            return bool(readable) and os.read(watch, len(READY)) == READY and proc.poll() is None
        finally:
            os.close(watch)

    def take(self) -> subprocess.Popen:
        """The standby in waiting (ready, or still warming: the request waits in its pipe), the next one started
        in its place. One that died meanwhile (killed by someone) is passed over."""
        with self._changed:
            while True:
                proc, read = self._waiting()
                self._next = None
                os.close(read)
                self._changed.notify_all()
                if proc.poll() is None:
                    return proc
                proc.communicate()

    def run(self, runbook: str, env: str = "sandbox", parameters: Mapping[str, Any] | None = None,
            incident: str | None = None, operator: str | None = None, output: Path | None = None,
            run_id: str | None = None, cell_timeout: int | None = None) -> subprocess.Popen:
        """A run started on a standby: the request written and its stdin closed; wait on it as on `run`'s
        process (`communicate()` returns its stdout and stderr, `returncode` its exit code)."""
        proc = self.take()
        line = request_line(runbook, env, parameters, incident, operator, output, run_id, cell_timeout)
        try:
            proc.stdin.write(line.decode())
            proc.stdin.close()
        except OSError:   # it died before reading: communicate() reports how
            pass
        proc.stdin = None
        return proc

    def close(self) -> None:
        """Kill the standby in waiting (it holds no run) and start no other; runs taken are left to their own."""
        with self._changed:
            self._closed = True
            waiting, self._next = self._next, None
            self._changed.notify_all()
        if waiting is not None:
            proc, read = waiting
            os.close(read)
            proc.kill()
            proc.communicate()
