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
dies with its parent (PR_SET_PDEATHSIG), and so does its kernel. standby_pool.Pool keeps one ready for
`serve`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from .. import paths
from ..errors import UsageError
from ..printable import show
from .standby_pool import READY

FIELDS = {"runbook", "env", "parameters", "incident", "operator", "output", "run_id", "cell_timeout"}
MAX_REQUEST = 256 * 1024   # bytes of the request line; a longer one is refused, never read whole


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
    if request.get("output") is not None:   # serve looks its runs up in its own --output: filed there, whatever
        argv.append(f"--archive={request['output']}")   # archive: the profile names
    if request.get("cell_timeout") is not None:
        argv.append(f"--cell-timeout={request['cell_timeout']}")
    os.environ.pop(GIVEN_RUN_ID, None)
    if request.get("run_id"):
        os.environ[GIVEN_RUN_ID] = request["run_id"]
    return argv


# -- serve's side: one standby kept ready ----------------------------------------------------------------------


if __name__ == "__main__":
    main()
