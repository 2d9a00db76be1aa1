"""params/schedules.yaml and `aias-runbooks schedule run-due`: which runbooks run when, each slot once.

A schedule entry names a cron expression (5 fields, UTC), a runbook, its environment and parameters, and
optionally an incident id, whom to notify of a change of status (`notify:`, notify.py) and the archive its runs
are filed in (`archive:`, a folder or s3://bucket/prefix). The whole file is checked before anything runs, each
entry as `aias-runbooks run` checks its input (prepare()), so a mistake is one line naming the entry and what is
valid. `schedule check` is that check alone; `schedule export` (schedule_export.py) writes the same entries as
Kubernetes CronJobs, systemd timers or an Airflow DAG file, whose runs are `schedule run NAME` (run_entry below:
the orchestrator keeps the time, the shared catalogue the previous status).

run-due, called every minute (cron, a systemd timer), runs each entry whose latest slot (the latest minute at or
before now that its cron expression matches) has not been run yet:
- once per slot: `<output>/.schedule/<entry>.json` records the last slot taken, replaced atomically;
- no duplicates: the slots are chosen and recorded under an flock on `<output>/.schedule/run-due.lock`, held
  for milliseconds (not during the runs); a second invocation waits for it (at most LOCK_WAIT_S) and then finds
  those slots taken. If it cannot get it in that time it says so and exits 0: the holder runs what is due;
- one run of an entry at a time: an entry whose previous run is still going (its `<entry>.lock` is held) is
  not started; its slot stays open and is caught up once that run ends;
- catch-up: after downtime (or a run that outlasted its interval) an entry that missed one or more slots runs
  once, for the latest of them, never a burst: a runbook judges the present, so older slots would repeat it;
- a new entry (no state yet) starts with its next slot, as cron would: the current minute if it matches, else
  its latest slot is recorded as a baseline without a run;
- never a slot later than now: a `--now` ahead of this host's clock is refused (up to MAX_SKEW_S ahead, another
  host's clock, it is taken as now), and a slot recorded later than the clock (by hand, or by a version that took
  any --now) counts as none, so no entry is silenced until then;
- notify: once an entry's run ends, a change of its status is told (notify.tell) while the entry's lock is still
  held; the channels delivered are recorded in its state (`notified`), the others retried at its next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from croniter import CroniterError, croniter

from . import metrics, notify, paths
from .errors import AiasError, UsageError
from .input_files import read_yaml_file
from .printable import show
from .records import write_atomic
from .runner.request import make_output_root, output_root, prepare
from .runner.run_all import NOT_RUN, Job, Outcome, command, run_jobs, worst
from .settings import load_environment

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEYS = ("name", "cron", "runbook", "environment", "parameters", "incident", "notify", "archive")
LOCK_WAIT_S = 10.0
MAX_SKEW_S = 60   # how far ahead of this host's clock a --now may be (the caller's clock), taken as now
STATE_DIR = ".schedule"
RETRIED = "; retried at the next run"   # how notify.tell ends a line: true of run-due, which keeps `notified`


@dataclass(frozen=True)
class Entry:
    name: str
    cron: str
    job: Job
    notify: notify.Notify | None = None
    archive: str | None = None   # where its runs are filed: a folder or s3://bucket/prefix (None: run's default)

    def as_dict(self) -> dict[str, Any]:
        """The checked entry as `schedule check --json` prints it: the schedules file's keys (no secret: notify
        names channels, the profile holds their secrets) and `argv`, the `aias-runbooks` arguments of its run as
        run-due makes it (--entry, --archive; without --output), for an orchestrator that runs it itself."""
        return {"name": self.name, "cron": self.cron, "runbook": self.job.runbook, "environment": self.job.env,
                "parameters": self.job.parameters, "incident": self.job.incident, "archive": self.archive,
                "notify": _notify_dict(self.notify) if self.notify is not None else None,
                "argv": command(_job(self, self.archive), None)[3:]}   # `aias-runbooks` + these runs it


def _notify_dict(notice: notify.Notify) -> dict[str, Any]:
    """An entry's `notify:` as written in the schedules file (only the keys set)."""
    told: dict[str, Any] = {"when": notice.when}
    if notice.slack:
        told["slack"] = True
    if notice.email:
        told |= {"email": list(notice.email), "from": notice.sender}
    if notice.pagerduty:
        told["pagerduty"] = {"unknown": True} if notice.pagerduty_unknown else True
    return told


def default_path() -> Path:
    return paths.params_dir() / "schedules.yaml"


def load(path: Path | None = None, output: Path | None = None) -> list[Entry]:
    """Every entry of the schedules file, each checked as `aias-runbooks run` checks its input; UsageError (one
    line naming the file, the entry and what is valid) on the first problem. Nothing runs and nothing is
    written, not even the report root (run_due creates it)."""
    path = Path(path or default_path())
    where = f"schedules file {show(str(path), 200)}"
    data = read_yaml_file(path, where, "params/schedules.yaml")
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"schedules"} or not isinstance(data["schedules"], list):
        raise UsageError(f"{where} must hold `schedules:`, a list of entries ({', '.join(KEYS)})")
    entries: list[Entry] = []
    for number, item in enumerate(data["schedules"], 1):
        entry = _entry(item, f"{where}, entry {number}", output)
        if any(e.name == entry.name for e in entries):
            raise UsageError(f"{where}, entry {number}: the name '{entry.name}' is used twice; names are unique")
        entries.append(entry)
    return entries


def _entry(item: Any, where: str, output: Path | None) -> Entry:
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be a mapping with keys {', '.join(KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{where} needs a name: letters, digits, '.', '_' or '-' (at most 64, e.g. health-5min)")
    where = f"{where} ('{name}')"
    unknown = [str(k) for k in item if k not in KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key {show(unknown[0])}; valid: {', '.join(KEYS)}")
    for key in ("cron", "runbook", "environment"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise UsageError(f"{where}: `{key}` is required and must be text")
    cron = " ".join(item["cron"].split())
    _check_cron(cron, where)
    params = item.get("parameters") or {}
    if not isinstance(params, dict):
        raise UsageError(f"{where}: `parameters` must be a mapping of name: value")
    incident = item.get("incident")
    if incident is not None and not isinstance(incident, str):
        raise UsageError(f"{where}: `incident` must be text (e.g. INC-1234)")
    archive = _check_archive(item["archive"], where) if item.get("archive") is not None else None
    try:   # the archive's form only: a DAG file checks the entries at every parse, no bucket is reached for it
        request = prepare(item["runbook"], item["environment"], {str(k): v for k, v in params.items()}, incident,
                          None, output, make_root=False, archive=archive, entry=name, check_archive=False)
    except AiasError as exc:
        raise UsageError(f"{where}: {exc}") from None
    notice = notify.parse(item["notify"], request.profile, where) if item.get("notify") is not None else None
    return Entry(name, cron, Job(request.info.slug, request.profile.name, request.parameters, request.incident),
                 notice, archive)


def _check_archive(value: Any, where: str) -> str:
    """An entry's `archive:`: text, a folder or an s3:// URL (never a URL of another scheme, which would be taken
    as a folder of that name); prepare() then checks its form as `run --archive` does. The text as given."""
    valid = "valid: a folder, or s3://bucket/prefix (e.g. s3://acme-runbooks/prod)"
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise UsageError(f"{where}: `archive` {show(value)} must be text without surrounding spaces; {valid}")
    if "://" in value and not value.startswith("s3://"):
        raise UsageError(f"{where}: `archive` {show(value)} is neither a folder nor an s3:// URL; {valid}")
    return value


def _check_cron(cron: str, where: str) -> None:
    valid = ("valid: 5 fields, minute hour day-of-month month day-of-week, in UTC (e.g. '*/5 * * * *', "
             "'0 * * * *', '30 2 * * 1-5')")
    if len(cron.split()) != 5:
        raise UsageError(f"{where}: cron {show(cron)} has {len(cron.split())} field(s); {valid}")
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=timezone.utc)).get_next(datetime)
    except CroniterError as exc:
        never = "never matches a date" if "failed to find" in str(exc) else "is not a cron expression"
        raise UsageError(f"{where}: cron {show(cron)} {never}; {valid}") from None


def check_now(now: datetime | None = None) -> datetime:
    """The time to judge slots at (UTC): `now`, or this host's clock; never later than the clock. A `now` more
    than MAX_SKEW_S ahead is refused (UsageError): the slot it took would silence the entry until then."""
    clock = datetime.now(timezone.utc)
    if now is None:
        return clock
    if now > clock + timedelta(seconds=MAX_SKEW_S):
        raise UsageError(f"--now {now.isoformat()} is ahead of this host's clock ({clock:%Y-%m-%dT%H:%M:%S}Z); "
                         f"valid: a time at most {MAX_SKEW_S} s ahead of now, or earlier (default: now)")
    return min(now, clock).astimezone(timezone.utc)


def latest_slot(cron: str, now: datetime) -> datetime:
    """The latest minute at or before `now` (UTC) that the expression matches."""
    minute = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
    return croniter(cron, minute + timedelta(minutes=1)).get_prev(datetime).astimezone(timezone.utc)


# -- run-due --------------------------------------------------------------------------------------------


@dataclass
class Ran:
    entry: Entry
    slot: datetime | None   # None: run now, for an orchestrator (schedule run)
    outcome: Outcome
    notes: list[str] = field(default_factory=list)   # notifications not delivered, one line each (for stderr)

    def line(self) -> str:
        report = f"  report: {self.outcome.report}" if self.outcome.report else ""
        when = f" ({self.slot:%Y-%m-%d %H:%M}Z)" if self.slot is not None else ""
        return f"{self.entry.name}{when}: {self.outcome.summary}{report}"


@dataclass
class Due:
    ran: list[Ran]
    busy: bool = False   # another run-due held the lock throughout LOCK_WAIT_S

    @property
    def exit_code(self) -> int:
        return worst([r.outcome.exit_code for r in self.ran])


def run_due(entries: list[Entry], output: Path | None = None, now: datetime | None = None,
            parallel: int | None = None, metrics_dir: Path | None = None, archive: str | None = None) -> Due:
    """Run each entry whose latest slot is not taken yet (see the module's docstring); at most `parallel` at once.
    UsageError for a `now` ahead of the clock (check_now), before anything is written. With `metrics_dir`, each
    run's verdict is written there as a Prometheus textfile once it ends (metrics.write_textfile). Each run is
    filed with its entry's name, into `archive`, else the entry's archive:, else the run's default."""
    now = check_now(now)
    folder = make_output_root(output_root(output)) / STATE_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    with _flock(folder / "run-due.lock", LOCK_WAIT_S) as held:
        if not held:
            return Due([], busy=True)
        claimed = _claim(entries, folder, now)
    slots = {entry.name: (slot, fh) for entry, slot, fh in claimed}
    jobs = [_job(entry, archive or entry.archive) for entry, _, _ in claimed]
    notes: dict[str, list[str]] = {}

    def done(outcome: Outcome) -> None:   # the entry's run ended: record it, then free the entry
        entry = next(e for (e, _, _), job in zip(claimed, jobs, strict=True) if job is outcome.job)
        slot, fh = slots[entry.name]
        with contextlib.suppress(OSError), _flock(folder / "run-due.lock", None):
            state = _state(folder, entry.name)
            if state.get("slot") == slot.isoformat():   # not overtaken by a later slot meanwhile
                write_atomic(_state_path(folder, entry.name), json.dumps(state | {
                    "finished_at": datetime.now(timezone.utc).isoformat(), "exit_code": outcome.exit_code,
                    "status": outcome.status, "report": outcome.report}) + "\n")
        with _local_report(outcome.report, entry.job.env) as report:
            notes[entry.name] = _metrics(metrics_dir, outcome, report) if metrics_dir is not None else []
            if entry.notify is not None:
                notes[entry.name] += _notify(folder, entry, outcome, report)
        fh.close()

    try:
        outcomes = run_jobs(jobs, output, parallel, on_done=done)
    finally:
        for _, _, fh in claimed:
            fh.close()
    return Due([Ran(entry, slot, outcome, notes.get(entry.name, []))
                for (entry, slot, _), outcome in zip(claimed, outcomes, strict=True)])


def _metrics(metrics_dir: Path, outcome: Outcome, report: Path | None) -> list[str]:
    """The run's Prometheus textfile from its filed verdict.json (beside `report`, _local_report's; duration and
    finish time from its provenance); a line saying why not when it could not be written (a run that filed no
    report has no verdict to write)."""
    if report is None:
        return []
    try:
        verdict = json.loads((report.parent / "verdict.json").read_text(encoding="utf-8"))
        prov = verdict.get("provenance") or {}
        finished = datetime.fromisoformat(prov["finished_at"]).timestamp()
        metrics.write_textfile(metrics_dir, verdict, float(prov.get("duration_s", outcome.seconds)), finished)
        return []
    except (OSError, ValueError, KeyError, AiasError) as exc:
        return [f"metrics not written to {metrics_dir}: {type(exc).__name__}"]


def _notify(folder: Path, entry: Entry, outcome: Outcome, report: Path | None) -> list[str]:
    """Tell the entry's receivers of a change of status since the statuses last told (its state's `notified`);
    what was delivered is recorded in its state. Never raises: a notification must not fail the schedule (the
    lines say what was not delivered, retried at the next run)."""
    delivered, problems = _tell(entry, _state(folder, entry.name).get("notified") or {}, outcome.status,
                                report, _link(outcome.report))
    if delivered:
        try:
            with _flock(folder / "run-due.lock", None):
                state = _state(folder, entry.name)
                if state:
                    write_atomic(_state_path(folder, entry.name), json.dumps(state | {
                        "notified": (state.get("notified") or {}) | delivered}) + "\n")
        except OSError as exc:
            problems.append(f"what was told not recorded ({exc.strerror or type(exc).__name__}); told again at "
                            "the next run")
    return problems


def _tell(entry: Entry, notified: dict[str, str], status: str, report: Path | None,
          link: str | None = None) -> tuple[dict[str, str], list[str]]:
    """notify.tell for the entry's channels against the statuses last told (`notified`, {channel: status}), of
    the run whose report.html is `report` (a local copy beside its verdict.json) shown as `link` (its s3:// URL;
    None: the local path): ({channel: status} delivered, a line per channel not delivered). Never raises."""
    assert entry.notify is not None
    try:
        profile = load_environment(entry.job.env)
        return notify.tell(entry.name, entry.job.runbook, entry.job.env, entry.notify, notified, status, report,
                           profile, link=link)
    except Exception as exc:  # noqa: BLE001 - one line; the caller says when it is tried again
        return {}, [f"notifications not sent ({type(exc).__name__}){RETRIED}"]


def _link(report: str | None) -> str | None:
    """A report's location to show when it is not on this host (an s3:// URL); None for a local one."""
    from .runner.store import is_remote
    return report if is_remote(report) else None


@contextlib.contextmanager
def _local_report(report: str | None, env: str) -> Iterator[Path | None]:
    """A run's report.html as a local path whose folder holds its verdict.json, as metrics and notify read it:
    the report itself when it is local; for one in object storage, a temporary copy of its verdict.json under
    <day>/<folder>/ (the last parts of its URL, which report_url() joins to report_base_url). None when the run
    filed no report or its verdict cannot be read."""
    from .runner.store import archive_secrets, is_remote, open_archive
    if report is None or not is_remote(report):
        yield Path(report) if report else None
        return
    folder, _ = report.rsplit("/", 1)
    day, name = folder.rsplit("/", 2)[-2:]
    with tempfile.TemporaryDirectory(prefix="aias-report-") as temp:
        local = Path(temp, day, name)
        try:
            data = open_archive(folder, archive_secrets(load_environment(env))).read("verdict.json")
            local.mkdir(parents=True)
            (local / "verdict.json").write_bytes(data)
        except Exception:  # noqa: BLE001 - unreadable: told without its findings, no metrics
            yield None
            return
        yield local / "report.html"


def _claim(entries: list[Entry], folder: Path, now: datetime) -> list[tuple[Entry, datetime, IO]]:
    """Under the run-due lock: the entries due now, each slot recorded as taken and the entry's own lock held."""
    minute = now.replace(second=0, microsecond=0)
    claimed = []
    for entry in entries:
        slot = latest_slot(entry.cron, now)
        state = _state(folder, entry.name)
        last = state.get("slot")
        if last is not None and slot <= datetime.fromisoformat(last):
            continue
        record = {"slot": slot.isoformat(), "cron": entry.cron, "runbook": entry.job.runbook, "env": entry.job.env}
        if "notified" in state:   # the statuses last told, kept across runs
            record["notified"] = state["notified"]
        if last is None and slot != minute:   # new entry: its latest slot predates it, so it is a baseline
            write_atomic(_state_path(folder, entry.name), json.dumps(record | {"baseline": True}) + "\n")
            continue
        fh = open(folder / f"{entry.name}.lock", "a")   # noqa: SIM115 - held until the entry's run ends
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:   # its previous run still going: the slot stays open, caught up later
            fh.close()
            if last is None:   # keep it open for a new entry too: the slot before it is the baseline
                before = croniter(entry.cron, slot).get_prev(datetime).astimezone(timezone.utc)
                write_atomic(_state_path(folder, entry.name), json.dumps(record | {
                    "slot": before.isoformat(), "baseline": True}) + "\n")
            continue
        write_atomic(_state_path(folder, entry.name), json.dumps(record | {
            "claimed_at": datetime.now(timezone.utc).isoformat(), "pid": os.getpid()}) + "\n")
        claimed.append((entry, slot, fh))
    return claimed


def _state_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.json"


def _state(folder: Path, name: str) -> dict[str, Any]:
    """The entry's recorded state; {} (a new entry) when there is none, it is unreadable, or its slot is later
    than the clock (no slot is: kept, it would silence the entry until then)."""
    try:
        state = json.loads(_state_path(folder, name).read_text())
        if datetime.fromisoformat(state["slot"]) > datetime.now(timezone.utc):
            return {}
        return state
    except (OSError, ValueError, KeyError, TypeError):   # none yet, or unreadable: a new entry
        return {}


@contextlib.contextmanager
def _flock(path: Path, wait: float | None) -> Iterator[bool]:
    """An exclusive flock on `path`: yields True once held; False if `wait` seconds pass first (None: wait)."""
    with open(path, "a") as fh:
        if wait is None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        yield False
                        return
                    time.sleep(0.05)
        yield True


# -- schedule run / notify: runs an orchestrator schedules -----------------------------------------------------


def find(entries: list[Entry], name: str) -> Entry:
    """The entry called `name`; UsageError naming the valid ones when there is none."""
    for entry in entries:
        if entry.name == name:
            return entry
    raise UsageError(f"no entry {show(name)} in the schedules file; valid: "
                     f"{', '.join(e.name for e in entries) or 'none (the file has no entries)'}")


def run_entry(entry: Entry, output: Path | None = None, archive: str | None = None) -> Ran:
    """Run the entry now, for an orchestrator (Kubernetes, systemd, Airflow) that chose the time: no slot is
    claimed and no run-due lock taken (the orchestrator runs one at a time: concurrencyPolicy Forbid, a oneshot
    unit, max_active_runs=1). The run is `aias-runbooks run` filed with the entry's name (--entry) into `archive`
    (else the entry's archive:), a SIGTERM passed on to it (its partial report is filed); then a change of status
    is told as tell_filed() judges it, from the shared catalogue, not this host's state."""
    (outcome,) = run_jobs([_job(entry, archive or entry.archive)], output, 1)
    notes: list[str] = []
    if entry.notify is not None and outcome.status != NOT_RUN and outcome.run_id is not None:
        try:
            notes = tell_filed(entry, outcome.run_id, output, archive).problems
        except AiasError as exc:   # the run stands; its exit code is the run's
            notes = [f"nothing told: {exc}"]
    return Ran(entry, None, outcome, notes)


def _job(entry: Entry, archive: str | None = None) -> Job:
    """The entry's run with its name and archive, for `aias-runbooks run --entry NAME [--archive URL]`."""
    return replace(entry.job, entry=entry.name, archive=archive)


@dataclass
class Told:
    lines: list[str]      # what was told, to whom (stdout)
    problems: list[str]   # a channel not told, one line each (stderr; exit 3 for `schedule notify`)


PAGE_LOOKBACK = 10   # previous runs read at most to find whether the entry's incident is open


def tell_filed(entry: Entry, run_id: str, output: Path | None = None, archive: str | None = None) -> Told:
    """Tell the change of status of the entry's filed run `run_id`, judged against the entry's previous run in
    the catalogue (catalog.previous: the newest other run of the entry started before it), never against one
    host's state: whichever host or worker tells, one change is told once. UsageError when the run is not in the
    catalogue or stands for another entry. A channel not delivered is a line in `problems`; it is not retried by
    itself (the next run judges its own change): `schedule notify` again tells it."""
    from .runner import catalog
    if entry.notify is None:
        return Told([f"{entry.name}: no notify: in its entry; nothing to tell"], [])
    place = _open_archive(entry, output, archive)
    record = catalog.record(place, run_id)
    if record is None:
        raise UsageError(f"run {show(run_id)} is not in the catalogue of {place.url}; valid: a run id that "
                         "`aias-runbooks reports` lists")
    if record.get("entry") != entry.name:
        raise UsageError(f"run {run_id} was filed for entry {show(str(record.get('entry')))}, not "
                         f"{show(entry.name)}; its record's entry is the one to tell")
    status = str(record.get("status"))
    previous = catalog.previous(place, entry.name, run_id)
    before = str(previous["status"]) if previous else "OK"   # none yet counts as OK, as run-due's first run
    notified = {channel: before for channel in entry.notify.channels}
    if entry.notify.pagerduty:
        notified["pagerduty"] = _paged_before(place, entry, previous)
    where = place.where(f"{record['report_dir']}/report.html") if record.get("report_dir") else None
    with _local_report(where, entry.job.env) as report:
        delivered, problems = _tell(entry, notified, status, report, _link(where))
    hint = f"; `aias-runbooks schedule notify {entry.name} --run-id {run_id}` tries again"
    problems = [line.removesuffix(RETRIED) + hint for line in problems]
    lines = [f"{entry.name}: {channel} told {notified[channel]} -> {told} (run {run_id})"
             for channel, told in delivered.items()]
    if not delivered and not problems:
        lines = [f"{entry.name}: {status}, no change to tell (run {run_id}; before it: "
                 f"{previous['run_id'] + ' ' + before if previous else 'none'})"]
    return Told(lines, problems)


def _paged_before(place: Any, entry: Entry, previous: dict[str, Any] | None) -> str:
    """The status the entry's PagerDuty incident was last triggered or resolved for, as run-due's `notified`
    keeps it: the newest previous run judged in or out of the trigger set (an UNKNOWN that does not page leaves
    the incident as it was, so it is passed over), at most PAGE_LOOKBACK runs back; OK when none is."""
    from .runner import catalog
    assert entry.notify is not None
    judged = (*entry.notify.trigger_on, "OK", "WARNING")
    for _ in range(PAGE_LOOKBACK):
        if previous is None:
            return "OK"
        if previous.get("status") in judged:
            return str(previous["status"])
        previous = catalog.previous(place, entry.name, str(previous["run_id"]))
    return "OK"


def _open_archive(entry: Entry, output: Path | None, archive: str | None) -> Any:
    """The archive the entry's runs are filed in: `archive`, else the entry's archive:, else the profile's (the
    run's own default), else the report root."""
    from .runner import store
    profile = load_environment(entry.job.env)
    location = archive or entry.archive or profile.archive
    return store.open_archive(location or output_root(output), store.archive_secrets(profile))
