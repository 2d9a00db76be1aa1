"""serve's runs: each admitted alert's run is the same `aias-runbooks run` in a process of its own, with the run id
serve already answered with, filing into serve's --output like any run. The process is a warm standby
(runner/standby_pool.py's Pool): its runner and a fresh kernel were started before the alert came.

When a run ends (in a worker thread: it is HTTP and disk): its catalogue record is read back, its verdict recorded
in the metrics (the Collector behind GET /metrics, and the --metrics-dir textfile), a change of its status told to
the route's notify channels (notify.tell, entry "route/<route>/<group id>", what was told kept in
<output>/.serve/state/<route>-<group id>.json), the report's location posted to a PagerDuty incident as a note,
and one line added to the audit log.

A run started is recorded in <output>/.serve/running/<run id>.json until all that is done. The runner process dies
with serve (the standby's PR_SET_PDEATHSIG): killed outright, serve leaves the run's workspace unfiled, and the next
start files it (execute.finish_orphans), says "filed orphan run <id>" and does what the run's end would have done.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import notify
from ..records import write_atomic
from ..runner import catalog, standby_pool, workspace
from ..runner.redact import redact_text
from ..runner.run_all import Job
from ..settings import load_environment
from .admission import Admission
from .audit import FOLDER, Audit

RUNNING = "running"
STATE = "state"
ORPHAN_WAIT_S = 10.0     # how long a killed serve's runner may take to die, so its workspace is free to file


def new_run_id(taken: Callable[[str], bool]) -> str:
    """A run id as execute() makes them (UTC time, 4 hex digits), not `taken` by a run this serve admitted."""
    while True:
        run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        if not taken(run_id):
            return run_id


@dataclass(frozen=True)
class Ticket:
    """One admitted run: what to run and what to do when it ends (whom to tell, where to post the report)."""

    run_id: str
    job: Job
    route: str
    sender: str
    source: str
    fingerprint: str
    group: str
    group_id: str
    key: str
    reference: str | None = None   # the PagerDuty incident to post the report to

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Ticket:
        data = json.loads(text)
        return cls(**(data | {"job": Job(**data["job"])}))


class Runs:
    """Starts admitted runs, starts the queued ones as places free, and finishes each run's end (see the module)."""

    def __init__(self, output: Path, admission: Admission, audit: Audit, notify_of: Callable[[str], Any],
                 collector: Any, metrics_dir: Path | None, say: Callable[[str], None]) -> None:
        self.output, self.admission, self.audit, self.notify_of = output, admission, audit, notify_of
        self.collector, self.metrics_dir, self.say = collector, metrics_dir, say
        self.tickets: dict[str, Ticket] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.pool = standby_pool.Pool()   # the next run's runner and kernel, started before its alert comes
        self.tasks: set[asyncio.Task] = set()
        self.issued: set[str] = set()
        self.locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()
        for name in (RUNNING, STATE):
            (output / FOLDER / name).mkdir(mode=0o700, parents=True, exist_ok=True)

    def new_id(self) -> str:
        run_id = new_run_id(lambda r: r in self.issued or (self.output / workspace.WORK / r).exists())
        self.issued.add(run_id)
        return run_id

    def admitted(self, ticket: Ticket, started: bool) -> None:
        """Keep the ticket; start its run now if admission counted it as running, else when a place frees."""
        self.tickets[ticket.run_id] = ticket
        if started:
            self._start(ticket)

    def _start(self, ticket: Ticket) -> None:
        write_atomic(self._pending(ticket.run_id), ticket.to_json(), mode=0o600)
        task = asyncio.get_running_loop().create_task(self._run(ticket))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, ticket: Ticket) -> None:
        started, job = time.monotonic(), ticket.job
        try:
            proc = await asyncio.to_thread(self.pool.run, job.runbook, job.env, job.parameters, job.incident,
                                           None, self.output, ticket.run_id)
        except (OSError, RuntimeError) as exc:   # out of processes, or the pool closed (serve is stopping)
            self._pending(ticket.run_id).unlink(missing_ok=True)
            self.tickets.pop(ticket.run_id, None)
            self.audit.record("failed", **self._fields(ticket), reason=f"could not start the run: {exc}")
            self._start_next(self.admission.forget(ticket.run_id))
            return
        self.procs[ticket.run_id] = proc
        self.say(f"run {ticket.run_id} started: {job.runbook} on {job.env} (route {ticket.route})")
        _, stderr = await asyncio.to_thread(proc.communicate)
        self.procs.pop(ticket.run_id, None)
        resolved = self.admission.resolved_meanwhile(ticket.run_id)
        self._start_next(self.admission.finished(ticket.run_id))
        try:
            await asyncio.to_thread(self.ended, ticket, stderr or "", time.monotonic() - started, resolved)
        finally:
            self.tickets.pop(ticket.run_id, None)

    def _start_next(self, following: str | None) -> None:
        """Start the queued run admission promoted to running, if any."""
        if following is not None and following in self.tickets:
            self._start(self.tickets[following])

    def ended(self, ticket: Ticket, stderr: str = "", seconds: float | None = None, resolved: bool = False,
              orphan: bool = False) -> None:
        """What a run's end does (see the module); never raises: a failed page is a line in the audit log."""
        try:
            record = filed_record(self.output, ticket.run_id)
            if record is None:
                lines = [line for line in stderr.splitlines() if line.strip()]
                why = lines[-1] if lines else "it filed no report"
                self.audit.record("failed", **self._fields(ticket), reason=why)
                self.say(f"run {ticket.run_id} failed: {redact_text(why, self.audit.secrets)[0]}")
                return
            report = self.output / record["report_dir"] / "report.html"
            notes = self._metrics(record, report, seconds)
            if resolved:
                notes.append("the alert resolved while the run was going: its status is not paged")
            elif (channels := self.notify_of(ticket.route)) is not None:
                notes += self.tell(ticket.route, ticket.group, ticket.group_id, ticket.job, channels, record["status"],
                                   report)
            if ticket.source == "pagerduty" and ticket.reference:
                notes += self._note(ticket, record, report)
            self.audit.record("orphan-filed" if orphan else "filed", **self._fields(ticket), status=record["status"],
                              report=record["report_dir"], reason="; ".join(notes) or None)
            self.say(f"run {ticket.run_id} filed: {record['status']}  report: {report}")
        except Exception as exc:  # noqa: BLE001 - one run's end must not stop serve; the audit says what failed
            self.audit.record("failed", **self._fields(ticket), reason=f"after the run: {type(exc).__name__}: {exc}")
        finally:
            self._pending(ticket.run_id).unlink(missing_ok=True)

    def _metrics(self, record: dict[str, Any], report: Path, seconds: float | None) -> list[str]:
        from .. import metrics
        verdict = json.loads((report.parent / "verdict.json").read_text())
        duration = float(record.get("duration_s") or seconds or 0.0)
        finished = datetime.fromisoformat(record["finished_at"]).timestamp() if record.get("finished_at") \
            else time.time()
        self.collector.record(verdict, duration, finished)
        if self.metrics_dir is None:
            return []
        try:
            metrics.write_textfile(self.metrics_dir, verdict, duration, finished)
        except OSError as exc:
            return [f"metrics textfile not written in {self.metrics_dir}: {exc.strerror or exc}"]
        return []

    def tell(self, route: str, group: str, group_id: str, job: Job | None, channels: notify.Notify, status: str,
             report: Path | None) -> list[str]:
        """notify.tell for the entry "route/<route>/<group id>"; what was delivered is kept in the entry's state
        file. `job` None (an alert resolved): the runbook and environment last told, if anything was."""
        entry, path = f"route/{route}/{group_id}", self.output / FOLDER / STATE / f"{route}-{group_id}.json"
        with self._lock(path.name):
            state = _read(path)
            if job is None and not state:
                return []   # nothing was ever told for this entry: a recovery is news to nobody
            runbook, env = (job.runbook, job.env) if job else (state["runbook"], state["env"])
            report = report or (Path(state["report"]) if state.get("report") else None)
            notified = state.get("notified") or {}
            delivered, problems = notify.tell(entry, runbook, env, channels, notified, status, report,
                                              load_environment(env))
            write_atomic(path, json.dumps({
                "entry": entry, "route": route, "group": group, "runbook": runbook, "env": env, "status": status,
                "report": str(report) if report else None, "notified": notified | delivered}) + "\n", mode=0o600)
            return problems

    def _note(self, ticket: Ticket, record: dict[str, Any], report: Path) -> list[str]:
        profile = load_environment(ticket.job.env)
        where = notify.report_url(profile, report) or str(report)
        text = (f"aias-runbooks {record['runbook']} on {record['env']}: {record['status']}"
                f"{' (' + record['top_finding'] + ')' if record.get('top_finding') else ''}; report: {where}")
        problem = notify.post_incident_note(profile, ticket.reference, text)
        return [f"incident note not posted: {problem}"] if problem else []

    def _lock(self, name: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(name, threading.Lock())

    def _pending(self, run_id: str) -> Path:
        return self.output / FOLDER / RUNNING / f"{run_id}.json"

    @staticmethod
    def _fields(ticket: Ticket) -> dict[str, Any]:
        return {"sender": ticket.sender, "route": ticket.route, "fingerprint": ticket.fingerprint,
                "group": ticket.group, "run_id": ticket.run_id}

    # -- stopping and starting again --------------------------------------------------------------------------

    def drop_queued(self) -> list[Ticket]:
        """serve is stopping: the queued runs will not run; each is audited as dropped."""
        dropped = [self.tickets.pop(run_id) for run_id in self.admission.drain() if run_id in self.tickets]
        for ticket in dropped:
            self.audit.record("dropped", **self._fields(ticket), reason="serve stopped (SIGTERM) before its turn")
        return dropped

    def interrupt(self) -> None:
        """A second stop signal: SIGTERM to each running run (it stops its notebook and files a partial report)."""
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        """Until every run started has ended and its end is done."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def file_orphans(self) -> list[str]:
        """At start: the runs a killed serve left (its pending tickets) filed and their ends done; their ids."""
        pending = sorted((self.output / FOLDER / RUNNING).glob("*.json"))
        if not pending:
            return []
        tickets = []
        for path in pending:
            try:
                tickets.append(Ticket.from_json(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError):
                path.unlink(missing_ok=True)
        unfiled = {t.run_id for t in tickets if _wait_free(self.output / workspace.WORK / t.run_id)}
        if unfiled:
            from ..runner.execute import finish_orphans
            finish_orphans(self.output)
        for ticket in tickets:
            if ticket.run_id in unfiled and filed_record(self.output, ticket.run_id) is not None:
                self.say(f"filed orphan run {ticket.run_id} ({ticket.job.runbook} on {ticket.job.env}, route "
                         f"{ticket.route}): serve stopped before it ended")
            self.ended(ticket, orphan=ticket.run_id in unfiled)
        return sorted(unfiled)


def filed_record(output: Path, run_id: str) -> dict[str, Any] | None:
    """The run's catalogue record; None when it was not filed."""
    return catalog.record(output, run_id)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _wait_free(folder: Path) -> bool:
    """Whether the run's workspace is left to file: it exists and its lock frees within ORPHAN_WAIT_S (its runner,
    killed with serve, may take a moment to die)."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while folder.is_dir():
        try:
            fd = os.open(folder / "run.lock", os.O_RDWR)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
        finally:
            os.close(fd)
        time.sleep(0.05)
    return False
