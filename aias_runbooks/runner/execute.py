"""Run one runbook: validate, execute with papermill, then write, scan and catalogue its report."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import papermill
from traitlets.config import Config

from .. import paths
from ..errors import UsageError
from ..findings import Verdict
from ..records import write_atomic
from ..settings import Environment, load_environment
from .catalog import append_run, write_index
from .parameterize import ENV_PARAM, RunbookInfo, load_runbook, validate
from .redact import redact_folder, redact_text
from .report import make_run_dir, provenance, read_verdict, write_report

INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class RunResult:
    folder: Path
    verdict: Verdict
    redactions: int
    record: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return self.verdict.status.exit_code


@dataclass(frozen=True)
class RunRequest:
    """A checked request to run a runbook: everything that could be wrong with it was found already."""

    info: RunbookInfo
    profile: Environment
    parameters: dict[str, Any]
    incident: str | None
    operator: str | None = None


def prepare(slug: str, env: str = "sandbox", params: dict[str, Any] | None = None,
            incident: str | None = None, operator: str | None = None) -> RunRequest:
    """Check runbook, environment, parameters and incident id; UsageError on the first problem.

    A runbook with a guarded action takes `apply` and `operator` parameters: --operator fills `operator`,
    and apply=true without an operator is refused here, before anything runs.
    """
    info = load_runbook(slug)
    profile = load_environment(env)
    profile.check_ready()
    given = dict(params or {})
    if ENV_PARAM in given and given.pop(ENV_PARAM) != env:
        raise UsageError(f"set the environment with --env, not -p {ENV_PARAM}=...")
    if incident is not None and not INCIDENT.fullmatch(incident):
        raise UsageError(f"incident id {incident!r} is not valid; use letters, digits, '.', '_' or '-' "
                         "(at most 64, e.g. INC-1234)")
    if ENV_PARAM not in info.parameters:
        raise UsageError(f"runbook '{slug}' has no `{ENV_PARAM}` parameter; every runbook needs one")
    if operator and "operator" in info.parameters:
        given.setdefault("operator", operator)
    checked = validate(info, given)
    if checked.get("apply") is True and not str(checked.get("operator", "")).strip():
        raise UsageError("apply=true needs an operator for the audit record: add --operator NAME; nothing was run")
    return RunRequest(info, profile, checked, incident, operator or checked.get("operator") or None)


def execute(request: RunRequest, output_root: Path | None = None, cell_timeout: int = 300,
            progress: bool | None = None) -> RunResult:
    """Execute the notebook and archive its report; a failed run still leaves its partial notebook."""
    root = Path(output_root or paths.output_dir())
    slug, env = request.info.slug, request.profile.name
    started = datetime.now(timezone.utc)
    run_id = f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"   # UTC; short enough for application_name
    folder = make_run_dir(root, started, slug, env, request.incident)
    notebook = folder / "notebook.ipynb"
    error = None
    logging.getLogger("papermill").setLevel(logging.WARNING)
    with _kernel_env(AIAS_RUN_ID=run_id, AIAS_INCIDENT=request.incident, AIAS_OUTPUT_DIR=str(root)), \
            kernel_sockets() as config:
        try:
            papermill.execute_notebook(
                str(request.info.path), str(notebook), parameters=request.parameters | {ENV_PARAM: env},
                kernel_name="python3", progress_bar=sys.stderr.isatty() if progress is None else progress,
                log_output=False, execution_timeout=cell_timeout, cwd=str(request.info.path.parent),
                config=config)
        except Exception as exc:  # the run is reported as RUNBOOK_ERROR, never lost
            error = _describe(exc)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a scheduler's timeout (see cli.py): still reported
            error = "interrupted before the runbook finished (SIGINT or SIGTERM)"
    nb = nbformat.read(notebook if notebook.is_file() else request.info.path, as_version=4)
    finished = datetime.now(timezone.utc)
    verdict = read_verdict(nb, slug, env, run_id, error)
    effective = {n: p.default for n, p in request.info.parameters.items()} | request.parameters | {ENV_PARAM: env}
    prov = provenance(run_id, slug, env, request.incident, request.operator, started, finished, effective)
    write_report(folder, nb, verdict, prov)
    secrets_in_use = [s.reveal() for s in request.profile.secrets().values()]
    redactions = _scan(folder, secrets_in_use)
    record = {"run_id": run_id, "runbook": slug, "env": env, "incident": request.incident,
              "status": verdict.status.value, "exit_code": verdict.status.exit_code, "summary": verdict.summary,
              "top_finding": verdict.top.code if verdict.top else None, "started_at": prov["started_at"],
              "finished_at": prov["finished_at"], "duration_s": prov["duration_s"],
              "report_dir": folder.relative_to(root).as_posix(), "redactions": redactions, "error": error}
    cleaned, leaked = redact_text(json.dumps(record), secrets_in_use)   # error text may quote a secret too
    record = json.loads(cleaned) | {"redactions": redactions + leaked}
    append_run(root, record)
    write_index(root)
    return RunResult(folder, verdict, redactions, record)


def _scan(folder: Path, secrets_in_use: list[str]) -> int:
    """Redact secrets across the folder; the count is recorded in verdict.json."""
    found = redact_folder(folder, secrets_in_use)
    total = sum(found.values())
    if total:
        path = folder / "verdict.json"
        data = json.loads(path.read_text())
        data["redactions"] = total
        write_atomic(path, json.dumps(data, indent=2) + "\n")
    return total


def _describe(exc: Exception) -> str:
    if hasattr(exc, "ename"):
        text = f"cell [{getattr(exc, 'exec_count', '?')}] raised {exc.ename}: {exc.evalue}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip()[:500]


@contextmanager
def kernel_sockets() -> Iterator[Config]:
    """Kernel traffic over Unix sockets in a private folder, not loopback TCP: the kernel holds the run's secrets."""
    with tempfile.TemporaryDirectory(prefix="aias-kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": f"{folder}/kernel"}})


@contextmanager
def _kernel_env(**values: str | None) -> Iterator[None]:
    """Environment variables the kernel inherits for the duration of one run."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
