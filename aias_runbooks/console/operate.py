"""The console's operator actions: rerun a run with the same or edited parameters, run a schedule entry now, and the
four-eyes pages (approval requests: list, detail, approve, apply).

Every run the console starts is the CLI's own: `aias-runbooks run ...` (or `schedule run ENTRY`) in a detached
process (a session of its own, so it outlives a restart of serve and no signal of the console's reaches it), its
output in <output>/.console/runs/<run id>.log, filing into the console's report root (--output) and archive
(--archive). The run id is chosen here and handed to the runner (execute.GIVEN_RUN_ID, as serve does), so the
"started" page names it before the run is filed. A rerun's input is checked exactly as `run -p` checks it
(runner/request.prepare) before anything starts: a bad value is one line (400) naming the parameter and what is
valid. The operator is the console user, never a form field; `apply` and `approval` are never taken from the rerun
form (an apply goes through an approval request). Each action is one console audit record.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import AiasError, UsageError
from ..input_files import read_yaml_file
from ..printable import show
from ..records import read_jsonl, write_atomic
from ..runner import catalog, workspace
from ..runner.execute import GIVEN_RUN_ID, RUN_ID
from ..runner.parameterize import ENV_PARAM, Parameter, load_runbook
from ..runner.request import prepare
from ..runner.run_all import Job, command
from ..serve.runs import new_run_id
from ..settings import environment_names
from .auth import form, requires
from .compare_page import RunNotFound, filed_run, refuse

STARTED = ".console/runs"                          # under the report root: a started run's log and what it is
NOT_FROM_FORM = ("operator", "apply", "approval")   # never set from the rerun form (see the module)
RECENT_APPROVALS = 100
REQUEST_ID_HELP = "an approval request id (apr- and 12 hex digits, as Approvals lists them)"


@dataclass(frozen=True)
class Field:
    """One labelled input of the rerun form: the parameter, its input kind and the value shown."""

    param: Parameter
    kind: str          # "number" | "bool" | "choice" | "text"
    value: str
    step: str = ""
    low: str = ""
    high: str = ""


# -- the form --------------------------------------------------------------------------------------------------

def as_text(value: Any) -> str:
    """A parameter value as `run -p` text (true/false, a float's repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else "" if value is None else str(value)


def rerun_fields(slug: str, values: dict[str, Any]) -> list[Field]:
    """The runbook's settable parameters (not the environment, the operator, apply or approval), each with its
    input kind and `values`' value (else its default) as text."""
    fields = []
    for param in load_runbook(slug).parameters.values():
        if param.name == ENV_PARAM or param.name in NOT_FROM_FORM:
            continue
        value = as_text(values.get(param.name, param.default))
        bounds = param.bounds if param.type in ("int", "float") else None
        low, high = (_bound(b) for b in bounds) if bounds else ("", "")
        if param.type in ("int", "float"):
            fields.append(Field(param, "number", value, "1" if param.type == "int" else "any", low, high))
        elif param.type == "bool":
            fields.append(Field(param, "bool", value))
        elif param.choices:
            fields.append(Field(param, "choice", value))
        else:
            fields.append(Field(param, "text", value))
    return fields


def _bound(value: float) -> str:
    if value in (float("inf"), float("-inf")):
        return ""
    return str(int(value)) if float(value).is_integer() else repr(value)


def form_text(data: Any, name: str) -> str:
    """A form field's text ("" when absent); UsageError for a file upload in its place."""
    value = data.get(name, "")
    if not isinstance(value, str):
        raise UsageError(f"form field '{name}' must be text, not a file upload")
    return value


def run_parameters(verdict: dict[str, Any]) -> dict[str, Any]:
    """A filed run's parameters (its provenance), without the environment, operator, apply and approval."""
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    params = prov.get("parameters") if isinstance(prov.get("parameters"), dict) else {}
    return {k: v for k, v in params.items() if k != ENV_PARAM and k not in NOT_FROM_FORM}


# -- starting runs ---------------------------------------------------------------------------------------------

def start(output: Path, argv: list[str], about: dict[str, Any]) -> str:
    """Start `argv` (an aias-runbooks command) detached, with a new run id given to the runner; its output goes to
    <output>/.console/runs/<run id>.log and `about` (what it is, who started it) beside it as <run id>.json.
    Returns the run id. OSError when the process cannot be started."""
    folder = output / STARTED
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_id = new_run_id(lambda r: (folder / f"{r}.json").exists() or (output / workspace.WORK / r).exists())
    log_path = folder / f"{run_id}.log"
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=os.environ | {GIVEN_RUN_ID: run_id})
    threading.Thread(target=proc.wait, name=f"console-run-{run_id}", daemon=True).start()   # reaped when it ends
    write_atomic(folder / f"{run_id}.json", json.dumps(about | {
        "run_id": run_id, "pid": proc.pid, "argv": argv[3:],
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n", mode=0o600)
    return run_id


def started(output: Path, run_id: str) -> dict[str, Any] | None:
    """What the console recorded of a run it started (None for another id), with the log's last line."""
    if not RUN_ID.fullmatch(run_id):
        return None
    folder = output / STARTED
    try:
        about = json.loads((folder / f"{run_id}.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        lines = [line for line in (folder / f"{run_id}.log").read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return about | {"last_line": lines[-1][:500] if lines else ""}


def schedule_entries() -> tuple[list[dict[str, Any]], str | None]:
    """The schedules file's entries as written (name, cron, runbook, environment, parameters, incident), and the
    one line `schedule check` would refuse the file with (None when it passes): the page lists the entries even
    while, say, the sandbox they run on is down."""
    from .. import schedule
    path = schedule.default_path()
    try:
        data = read_yaml_file(path, f"schedules file {show(str(path), 200)}", "params/schedules.yaml")
    except AiasError as exc:
        return [], str(exc)
    try:
        schedule.load(path)
        problem = None
    except AiasError as exc:
        problem = str(exc)
    items = data.get("schedules") if isinstance(data, dict) else None
    entries = [{"name": str(item["name"]), "cron": str(item.get("cron", "")), "runbook": str(item.get("runbook", "")),
                "environment": str(item.get("environment", "")), "incident": item.get("incident"),
                "parameters": item.get("parameters") if isinstance(item.get("parameters"), dict) else {}}
               for item in (items if isinstance(items, list) else []) if isinstance(item, dict) and item.get("name")]
    return entries, problem


def run_argv(job: Job, output: Path, operator: str) -> list[str]:
    """The `aias-runbooks run` command of a job (run_all.command), the operator given as --operator."""
    return command(job, output) + ["--operator", operator]


def check_rerun(slug: str, env: str, params: dict[str, str], incident: str | None, operator: str, output: Path,
                archive: str) -> Job:
    """The run's input checked exactly as `run -p` checks it (prepare); UsageError/OutputError on the first
    problem, before anything starts. The Job to run (its parameters as checked, the operator left to --operator)."""
    request = prepare(slug, env, params, incident, operator, output, archive=archive)
    checked = {k: v for k, v in request.parameters.items() if k != "operator"}
    return Job(request.info.slug, request.profile.name, checked, request.incident, archive)


# -- approvals -------------------------------------------------------------------------------------------------

def approvals_module() -> Any:
    from ..actions import approvals
    return approvals


def audit_of(output: Path, request_id: str) -> list[dict[str, Any]]:
    """The audit.jsonl records that carry this approval request id (plan, approval, apply), oldest first."""
    return [r for r in read_jsonl(output / "audit.jsonl") if isinstance(r, dict) and r.get("request") == request_id]


def same_person(a: str | None, b: str | None) -> bool:
    """Names compared as approvals compares them (case-insensitively, after strip)."""
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def approval_rerun(console: Any, req: Any, operator: str) -> Job:
    """The apply of an approved request: its dry run's runbook and parameters plus apply=true and approval=<id>,
    checked as `run -p` checks them. RunNotFound when the dry run is not filed; UsageError as check_rerun."""
    _, verdict = filed_run(console.store(), req.run_id)
    params = {k: as_text(v) for k, v in run_parameters(verdict).items()} | {"apply": "true", "approval": req.id}
    prov = verdict.get("provenance") or {}
    return check_rerun(req.runbook, req.env, params, req.incident or prov.get("incident"), operator, console.output,
                       console.archive)


# -- routes ----------------------------------------------------------------------------------------------------

def routes(console: Any) -> list[web.RouteDef]:
    """The operator actions' and approvals' routes, bound to `console` (A1's Console)."""
    pages = Pages(console)
    table = [
        ("GET", "/console/runs/{run_id}/rerun", "operator", pages.get_rerun),
        ("POST", "/console/runs/{run_id}/rerun", "operator", pages.post_rerun),
        ("GET", "/console/started/{run_id}", "viewer", pages.get_started),
        ("GET", "/console/schedules", "viewer", pages.get_schedules),
        ("POST", "/console/schedules/{entry}/run", "operator", pages.post_schedule_run),
        ("GET", "/console/approvals", "viewer", pages.get_approvals),
        ("GET", "/console/approvals/{id}", "viewer", pages.get_approval),
        ("POST", "/console/approvals/{id}/approve", "approver", pages.post_approve),
        ("POST", "/console/approvals/{id}/apply", "operator", pages.post_apply),
    ]
    return [web.route(method, path, requires(role)(handler)) for method, path, role, handler in table]


class Pages:
    """The handlers (see routes: each is wrapped in auth.requires there, request["user"] is set); each reads the
    console's report root and archive."""

    def __init__(self, console: Any) -> None:
        self.console = console

    # rerun

    async def get_rerun(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        try:
            record, verdict = await asyncio.to_thread(filed_run, self.console.store(), run_id)
            fields = rerun_fields(str(record.get("runbook")), run_parameters(verdict))
        except RunNotFound as exc:
            return refuse(404, str(exc))
        except AiasError as exc:
            return refuse(400, f"run {run_id} cannot be rerun: {exc}")
        return self.console.render(request, "rerun.html", record=record, fields=fields,
                                   environments=environment_names(), env=record.get("env"),
                                   incident=record.get("incident") or "")

    async def post_rerun(self, request: web.Request) -> web.StreamResponse:
        data = await form(request)
        run_id, user = request.match_info["run_id"], request["user"]
        try:
            record, _ = await asyncio.to_thread(filed_run, self.console.store(), run_id)
        except RunNotFound as exc:
            return refuse(404, str(exc))
        slug = str(record.get("runbook"))
        try:
            names = [f.param.name for f in rerun_fields(slug, {})]
            params = {name: form_text(data, name) for name in names if name in data}
            env = form_text(data, "environment") or str(record.get("env"))
            incident = form_text(data, "incident").strip() or None
            job = await asyncio.to_thread(check_rerun, slug, env, params, incident, user.name, self.console.output,
                                          self.console.archive)
        except AiasError as exc:
            self.console.audit(request, "rerun", outcome="refused", source_run=run_id, runbook=slug, reason=str(exc))
            return refuse(400, str(exc))
        return self._start(request, "rerun", run_argv(job, self.console.output, user.name),
                           {"kind": "rerun", "runbook": job.runbook, "env": job.env, "source_run": run_id,
                            "by": user.name, "parameters": job.parameters, "incident": job.incident})

    def _start(self, request: web.Request, action: str, argv: list[str], about: dict[str, Any]) -> web.StreamResponse:
        """Start the run, audit it (one record) and redirect to its started page."""
        try:
            run_id = start(self.console.output, argv, about)
        except OSError as exc:
            self.console.audit(request, action, outcome="failed", reason=f"could not start: {exc}",
                               **{k: v for k, v in about.items() if k not in ("kind", "by")})
            return refuse(503, f"the run could not be started: {exc.strerror or exc}; try again")
        self.console.audit(request, action, outcome="started", run_id=run_id,
                           **{k: v for k, v in about.items() if k not in ("kind", "by")})
        raise web.HTTPSeeOther(f"/console/started/{run_id}")

    async def get_started(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        about = await asyncio.to_thread(started, self.console.output, run_id)
        if about is None:
            return refuse(404, f"the console started no run {show(run_id)}; valid: the id its started page named")
        record = await asyncio.to_thread(catalog.record, self.console.store(), run_id)
        return self.console.render(request, "started.html", run_id=run_id, about=about, record=record)

    # schedules

    async def get_schedules(self, request: web.Request) -> web.StreamResponse:
        entries, problem = await asyncio.to_thread(schedule_entries)
        return self.console.render(request, "schedules.html", entries=entries, problem=problem,
                                   can_run=request["user"].may("operator"))

    async def post_schedule_run(self, request: web.Request) -> web.StreamResponse:
        from .. import schedule
        await form(request)
        name, user = request.match_info["entry"], request["user"]
        listed, _ = await asyncio.to_thread(schedule_entries)
        if name not in [e["name"] for e in listed]:
            valid = ", ".join(e["name"] for e in listed) or "none (the file has no entries)"
            return refuse(404, f"no entry {show(name)} in the schedules file; valid: {valid}")
        try:   # the whole file checked as `schedule run` checks it, so a refusal is a line here, not a dead run
            entry = schedule.find(await asyncio.to_thread(schedule.load, None, self.console.output), name)
        except AiasError as exc:
            self.console.audit(request, "schedule-run", outcome="refused", entry=name, reason=str(exc))
            return refuse(400, str(exc))
        argv = [sys.executable, "-m", "aias_runbooks.cli", "schedule", "run", entry.name,
                "--output", str(self.console.output)]
        if entry.archive is None:   # an entry's own archive: its runs are filed there, as run-due files them
            argv += ["--archive", str(self.console.archive)]
        return self._start(request, "schedule-run", argv,
                           {"kind": "schedule", "entry": entry.name, "runbook": entry.job.runbook,
                            "env": entry.job.env, "by": user.name})

    # approvals

    async def get_approvals(self, request: web.Request) -> web.StreamResponse:
        approvals = approvals_module()
        listed = await asyncio.to_thread(approvals.requests, self.console.output)
        pending = [r for r in listed if r.status == "pending"]
        recent = [r for r in listed if r.status != "pending"][:RECENT_APPROVALS]
        return self.console.render(request, "approvals.html", pending=pending, recent=recent)

    async def _load(self, request_id: str) -> Any:
        approvals = approvals_module()
        return await asyncio.to_thread(approvals.load, request_id, self.console.output)

    async def get_approval(self, request: web.Request) -> web.StreamResponse:
        approvals = approvals_module()
        try:
            req = await self._load(request.match_info["id"])
        except approvals.ApprovalRefused as exc:
            return refuse(404, str(exc))
        user = request["user"]
        records = await asyncio.to_thread(audit_of, self.console.output, req.id)
        columns = list(dict.fromkeys(k for row in req.plan if isinstance(row, dict) for k in row))
        return self.console.render(
            request, "approval.html", req=req, columns=columns, records=records,
            can_approve=req.status == "pending" and user.may("approver")
            and not same_person(user.name, req.requested_by),
            own=same_person(user.name, req.requested_by),
            can_apply=req.status == "approved" and user.may("operator"))

    async def post_approve(self, request: web.Request) -> web.StreamResponse:
        approvals = approvals_module()
        await form(request)
        request_id, user = request.match_info["id"], request["user"]
        try:
            await self._load(request_id)
        except approvals.ApprovalRefused as exc:
            return refuse(404, str(exc))
        try:
            req = await asyncio.to_thread(approvals.approve, request_id, user.name, "console", self.console.output)
        except approvals.ApprovalRefused as exc:
            self.console.audit(request, "approve", outcome="refused", approval=request_id, reason=str(exc))
            return refuse(403, str(exc))
        self.console.audit(request, "approve", outcome="approved", approval=req.id, runbook=req.runbook,
                           env=req.env, plan_hash=req.plan_hash)
        raise web.HTTPSeeOther(f"/console/approvals/{req.id}")

    async def post_apply(self, request: web.Request) -> web.StreamResponse:
        approvals = approvals_module()
        await form(request)
        request_id, user = request.match_info["id"], request["user"]
        try:
            req = await self._load(request_id)
        except approvals.ApprovalRefused as exc:
            return refuse(404, str(exc))
        if req.status != "approved":
            line = f"request {req.id} is {req.status}; valid: only an approved request is applied"
            self.console.audit(request, "apply", outcome="refused", approval=req.id, reason=line)
            return refuse(409, line)
        try:
            job = await asyncio.to_thread(approval_rerun, self.console, req, user.name)
        except (RunNotFound, AiasError) as exc:
            line = f"request {req.id} cannot be applied: {exc}"
            self.console.audit(request, "apply", outcome="refused", approval=req.id, reason=line)
            return refuse(400, line)
        return self._start(request, "apply", run_argv(job, self.console.output, user.name),
                           {"kind": "apply", "runbook": job.runbook, "env": job.env, "source_run": req.run_id,
                            "approval": req.id, "by": user.name, "incident": job.incident})
