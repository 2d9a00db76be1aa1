"""Check a request to run a runbook before anything runs: runbook, environment, parameters, incident id,
operator and report folder.

This module imports nothing heavy (no papermill, nbformat, pandas, SQLAlchemy), so bad input is refused in a
fraction of a second; execute.py re-exports `prepare` and `RunRequest` for its callers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import OutputError, UsageError
from ..printable import show
from ..settings import Environment, environment_names, load_environment
from .parameterize import (
    ENV_PARAM,
    FileValue,
    Parameter,
    RunbookInfo,
    coerce,
    load_runbook,
    text_problem,
    validate,
)
from .store import check_output_root

INCIDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
OPERATOR = Parameter("operator", "str", "", "who runs it, for the report and audit")


@dataclass(frozen=True)
class RunRequest:
    """A checked request to run a runbook: everything that could be wrong with it was found already."""

    info: RunbookInfo
    profile: Environment
    parameters: dict[str, Any]
    incident: str | None
    output: Path
    operator: str | None = None
    archive: str | None = None   # where the report is filed (a folder or s3://bucket/prefix); None: `output`
    entry: str | None = None     # the schedule entry the run stands for (its record's `entry`)


def prepare(slug: str, env: str = "sandbox", params: dict[str, Any] | None = None,
            incident: str | None = None, operator: str | None = None, output: Path | None = None,
            make_root: bool = True, archive: str | None = None, entry: str | None = None,
            check_archive: bool = True) -> RunRequest:
    """Check runbook, environment, parameters, incident id, operator and report folder; UsageError (or
    OutputError) on the first problem. Input is checked before the target is consulted (is the sandbox up?),
    and the report folder is created last, so refused input writes nothing (a caller checking several requests
    first, as schedule and run-all do, passes make_root=False and creates it once all passed).

    The report root (`output`, else AIAS_OUTPUT_DIR, else output/) is made absolute here, against the caller's
    working directory, once: the notebook runs in notebooks/, where a relative one would name another folder.

    `params` values are -p strings or FileValues from a -f file. --operator and an `operator` parameter are one
    value: either fills the runbook's `operator` parameter and the report's operator; both, differing, is an
    error. apply=true without an operator is refused here, before anything runs.

    The archive (`archive`, else the profile's `archive:`, else the report root) is checked right after the report
    root: an unreachable or unauthorised bucket is one line before any kernel starts (check_archive=False: its form
    only, for a caller checking a file of entries without touching each bucket). `entry`: the schedule entry the
    run stands for, recorded with it.
    """
    info = load_runbook(slug)
    if ENV_PARAM not in info.parameters:
        raise UsageError(f"runbook '{slug}' has no `{ENV_PARAM}` parameter; every runbook needs one")
    if not ENV_NAME.fullmatch(env) or env not in environment_names():
        valid = ", ".join(environment_names()) or "none"
        raise UsageError(f"unknown environment {show(env)}; valid: {valid} (profiles live in params/environments)")
    if incident is not None and not INCIDENT.fullmatch(incident):
        raise UsageError(f"incident id {show(incident)} is not valid; use letters, digits, '.', '_' or '-' "
                         "(at most 64, e.g. INC-1234)")
    given = dict(params or {})
    if ENV_PARAM in given:
        value = given.pop(ENV_PARAM)
        if (value.value if isinstance(value, FileValue) else value) != env:
            where = f" ({value.where})" if isinstance(value, FileValue) else ""
            raise UsageError(f"set the environment with --env, not the `{ENV_PARAM}` parameter{where}")
    who = _operator(info, given.pop("operator", None), operator)
    checked = validate(info, given)
    if "operator" in info.parameters and who is not None:
        checked["operator"] = who
    if checked.get("apply") is True and not (who or "").strip():
        raise UsageError("apply=true needs an operator for the audit record: add --operator NAME; nothing was run")
    profile = load_environment(env)
    root = output_root(output)
    check_output_root(root)
    if entry is not None and not INCIDENT.fullmatch(entry):
        raise UsageError(f"--entry {show(entry)} is not a schedule entry name; valid: 1 to 64 letters, digits, '.', "
                         "'_' or '-'")
    location = archive or profile.archive
    if location is not None:
        from .store import archive_secrets, open_archive
        archive_at = open_archive(location, archive_secrets(profile))
        if check_archive:
            archive_at.check()
    profile.check_ready()
    if make_root:
        make_output_root(root)
    return RunRequest(info, profile, checked, incident, root, who if who and who.strip() else None,
                      str(location) if location is not None else None, entry)


def _operator(info: RunbookInfo, named: Any, flag: str | None) -> str | None:
    """The one operator from --operator and/or an `operator` parameter (-p or -f), checked as text."""
    spec = info.parameters.get("operator", OPERATOR)
    if flag is not None and (problem := text_problem(flag, spec.max_length)):
        raise UsageError(f"--operator {problem}")
    if named is None:
        return flag
    value = coerce(info.slug, spec, named)
    if flag is not None and flag != value:
        shown = f"({named.where})" if isinstance(named, FileValue) else show(value)
        raise UsageError(f"--operator {show(flag)} and the operator parameter {shown} differ; give the operator "
                         "once")
    return value


def output_root(output: Path | None = None) -> Path:
    """The report root a run files into: `output`, else AIAS_OUTPUT_DIR, else output/ in the checkout, as an
    absolute path (a relative one is the caller's working directory's)."""
    return Path(output or paths.output_dir()).absolute()


def make_output_root(root: Path) -> Path:
    """Create the report root (and its parents); OutputError unless it ends up a writable folder."""
    name = f"output folder {show(str(root), 200)}"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
    except OSError as exc:
        raise OutputError(f"{name} cannot be created: {(exc.strerror or type(exc).__name__).lower()}") from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise OutputError(f"{name} is not a writable folder")
    return root
