"""A warm standby for `serve`: a runner whose kernel is already started when its run is asked for.

`python -m aias_runbooks.runner.standby --parent PID` imports what `aias-runbooks run` imports (papermill, the
runner, the report's modules) and starts a fresh kernel warmed with every notebook's top-level imports, then
blocks reading ONE JSON request line on stdin:

    {"runbook": "health-check", "env": "sandbox", "parameters": {"samples": "10"}, "incident": null,
     "operator": null, "output": "/var/aias/output", "run_id": "20261207-120000-ab12", "cell_timeout": 300}

and runs it exactly as `aias-runbooks run` does (it *is* `run`'s own command line, given the request as its
arguments: the same checks, stdout lines, exit code, workspace, redaction and signal handling), the standing kernel
taking the place of the one `run` would start (runner/kernel.py adopts it). Then it exits: one kernel, one run.

Until its request comes, a standby holds nothing secret: the profile is read only once the request names it. It
dies with its parent (PR_SET_PDEATHSIG), and so does its kernel. `Pool` keeps one ready for `serve`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from .. import paths
from ..errors import UsageError
from ..printable import show

FIELDS = {"runbook", "env", "parameters", "incident", "operator", "output", "run_id", "cell_timeout"}
MAX_REQUEST = 256 * 1024   # bytes of the request line; a longer one is refused, never read whole
READY = b"ready\n"          # written on --ready-fd once the kernel answers (its warm-up done)


# -- the standby process ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Warm up, take one request from stdin, run it as `run` would, exit with its exit code."""
    args = _arguments(argv)
    _die_with(args.parent)
    from .. import cli
    cli.ensure_std_fds()
    code = _stand_by(args.ready_fd)
    cli.exit_now(code)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m aias_runbooks.runner.standby")
    parser.add_argument("--parent", type=int, required=True, help="the pid this standby dies with")
    parser.add_argument("--ready-fd", type=int, help="a pipe to write 'ready' on once the kernel answers")
    return parser.parse_args(argv)


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies, however it dies (PR_SET_PDEATHSIG, as the kernel does); a parent
    already gone by now (before the call took effect) ends it at once."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(3)


def _stand_by(ready_fd: int | None) -> int:
    """Everything `run` loads, loaded; the kernel started and warm; then the request, run by `run`'s own code."""
    from .. import cli
    from . import kernel
    with kernel.config(standby=True) as config:
        km = kernel.start_standby(config, _notebooks())   # it boots on the other core while we load the rest
        _preload()
        if kernel.wait_ready(km) and ready_fd is not None:
            _say_ready(ready_fd)
        try:
            argv = run_arguments(read_request(sys.stdin.buffer))
        except UsageError as exc:
            kernel.drop_standby()
            return cli.fail(f"standby request: {exc}")
        try:
            return cli.main(argv)
        finally:
            kernel.drop_standby()   # the request was refused before its run took the kernel


def _preload() -> None:
    """What `run` imports and prepares for the run before its first cell and for filing it after the last:
    loaded now, the run finds it done."""
    import nbformat
    import papermill  # noqa: F401

    from .. import catalogue
    from . import catalog, execute, report  # noqa: F401
    catalogue.codes()   # what the report says of each finding code (a YAML parse, ~0.15 s)
    for minor in {json.loads(path.read_text(encoding="utf-8")).get("nbformat_minor") for path in _notebooks()}:
        nbformat.validator.get_validator(4, minor)   # the notebook's schema, compiled (~0.1 s): every save checks it
    catalog.index_template()
    report.installed()   # the git commit and the packages' versions: the same for the one run of this process


def _notebooks() -> list[Path]:
    from ..catalogue import slugs
    return [paths.notebooks_dir() / f"{slug}.ipynb" for slug in slugs()]


def _say_ready(fd: int) -> None:
    try:
        os.write(fd, READY)
        os.close(fd)
    except OSError:   # nobody listens any more: the request may still come
        pass


def read_request(stream: Any) -> dict[str, Any]:
    """The one request line, checked for shape (its values are checked by `run`'s own checks); UsageError."""
    line = stream.readline(MAX_REQUEST + 1)
    if not line:
        raise UsageError("no request came (stdin closed); send one JSON line {\"runbook\": ..., \"env\": ...}")
    if len(line) > MAX_REQUEST:
        raise UsageError(f"the request line is longer than {MAX_REQUEST} bytes")
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the request line is not JSON ({exc}); send one JSON object on one line") from None
    if not isinstance(request, dict):
        raise UsageError("the request line must be a JSON object with runbook, env, parameters, incident, operator, "
                         "output and run_id")
    if unknown := sorted(set(request) - FIELDS):
        raise UsageError(f"unknown request field {show(unknown[0])}; valid: {', '.join(sorted(FIELDS))}")
    if not isinstance(request.get("runbook"), str) or not request["runbook"]:
        raise UsageError("the request names no runbook (\"runbook\": a slug, as `aias-runbooks list` shows)")
    for name in ("env", "incident", "operator", "output", "run_id"):
        if request.get(name) is not None and not isinstance(request[name], str):
            raise UsageError(f"request field {name!r} must be a string or null")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise UsageError("request field 'parameters' must map names to strings, as `run -p NAME=VALUE` takes them")
    if bad := next((n for n in parameters if "=" in n or not n), None):
        raise UsageError(f"parameter name {show(bad)} is not valid")
    timeout = request.get("cell_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        raise UsageError("request field 'cell_timeout' must be whole seconds")
    if request.get("run_id") is not None:
        from .execute import RUN_ID
        if not RUN_ID.fullmatch(request["run_id"]):
            raise UsageError(f"run id {show(request['run_id'])} is not one execute makes (YYYYmmdd-HHMMSS-xxxx)")
    return request


def run_arguments(request: Mapping[str, Any]) -> list[str]:
    """`aias-runbooks run`'s arguments for a request, each value in `--name=value` form so none reads as an
    option; the run id is handed over as `run` takes it from its caller (AIAS_NEW_RUN_ID)."""
    from .execute import GIVEN_RUN_ID
    if request["runbook"].startswith("-"):
        from .parameterize import load_runbook
        load_runbook(request["runbook"])   # raises UsageError naming the valid runbooks
    argv = ["run", request["runbook"], f"--env={request.get('env') or 'sandbox'}"]
    argv += [f"--param={name}={value}" for name, value in (request.get("parameters") or {}).items()]
    for name in ("incident", "operator", "output"):
        if request.get(name) is not None:
            argv.append(f"--{name}={request[name]}")
    if request.get("cell_timeout") is not None:
        argv.append(f"--cell-timeout={request['cell_timeout']}")
    os.environ.pop(GIVEN_RUN_ID, None)
    if request.get("run_id"):
        os.environ[GIVEN_RUN_ID] = request["run_id"]
    return argv


# -- serve's side: one standby kept ready ----------------------------------------------------------------------


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
        return __name__.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
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
                [sys.executable, "-m", __name__, "--parent", str(os.getpid()), "--ready-fd", str(write)],
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


if __name__ == "__main__":
    main()
