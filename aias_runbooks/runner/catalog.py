"""The archive's catalogue: one immutable record per run, and pages rebuilt from the records, with no lock held
across hosts, so any number of hosts file into one archive (a local folder or an S3 prefix: store.Archive) at once.

    catalog/runs/<YYYY-MM-DD>/<HHMMSSffffff>_<run_id>.json   one record per run, by its start (UTC); never rewritten
    catalog/days/<YYYY-MM-DD>.<count>.jsonl                  a closed day's records in one file (derived: a cache)
    catalog/index.json                                       the newest INDEX_RUNS records, the count, the closed days
    index.html                                               those runs, and a link to each closed day's page
    archive/<YYYY-MM-DD>.html                                every run of a closed day

A run is listed once its record exists, and its record is written only after its whole report folder is in the
archive (execute.py): no reader sees half a report. Filing costs a bounded number of writes and no listing however
large the archive: the record (created only if absent), index.json and index.html, each replaced only if still at
the version read (compare-and-swap: S3's conditional writes; locally an flock held for that one write), so two
filers never lose each other's run; on the first filing after a day closes (CLOSED_AFTER_DAYS), that day's page and
segment too (at most 5 writes). The records are the truth; segments, index.json and the pages can always be rebuilt
from them (`rebuild`, `reindex`), and a reader merges a segment with its day's records, so a record the segment
missed is never lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, Template, select_autoescape

from ..timestamps import recorded_time
from .store import Archive, open_archive

RUNS = "catalog/runs"
DAYS = "catalog/days"
INDEX_DATA = "catalog/index.json"
INDEX_RUNS = 500          # runs on index.html
CLOSED_AFTER_DAYS = 2     # a day is closed (its segment and page written) once this many days have passed
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
SEGMENT = re.compile(r"(\d{4}-\d{2}-\d{2})\.(\d+)\.jsonl")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_templates = Environment(loader=PackageLoader("aias_runbooks.runner", "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


def at(where: Archive | Path | str) -> Archive:
    """The archive for a path or URL (an Archive as it is)."""
    return where if isinstance(where, Archive) else open_archive(where)


# --- filing ----------------------------------------------------------------------------------------------------

class NotPaged(Exception):
    """The run's record is written (it is filed), but the index could not be rewritten; the next filing pages it.
    The message is the reason."""


def file_run(where: Archive | Path, record: dict[str, Any], now: datetime | None = None) -> None:
    """File one run: write its record (the moment it is listed), then close a day if one is due and bring the index
    up to date. An error writing the record propagates (nothing is filed); NotPaged when only the pages failed.
    Filing the same run again (a resumed filing) finds its record there and never counts it twice."""
    archive = at(where)
    new = archive.create(record_path(record), json.dumps(record).encode("utf-8"))
    try:
        _refresh(archive, record, new, now or datetime.now(timezone.utc))
    except Exception as exc:  # noqa: BLE001 - OSError locally, botocore's own errors on S3: the run is filed
        raise NotPaged(getattr(exc, "strerror", None) or str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc


def record_path(record: dict[str, Any]) -> str:
    """Where a run's record lives: its start day, then its start time and run id (names sort as runs started)."""
    started = _started(record)
    run_id = str(record.get("run_id", ""))
    if started is None or not RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run record: run_id {run_id!r}, started_at {record.get('started_at')!r}")
    return f"{RUNS}/{started:%Y-%m-%d}/{started:%H%M%S%f}_{run_id}.json"


def _started(record: dict[str, Any]) -> datetime | None:
    moment = recorded_time(record.get("started_at"))
    return moment.astimezone(timezone.utc) if moment else None


def _refresh(archive: Archive, filed: dict[str, Any], new: bool, now: datetime) -> None:
    """index.json (the newest runs, the count, the closed days) updated by compare-and-swap, so two filers never
    lose each other's run and no listing is needed; then index.html, also swapped against the version read before
    the state it shows, so the last page written shows the newest state. A day due to close is closed first (its
    page and segment), so a filing costs at most 5 writes; its failure is raised once the index is up to date."""
    html_version = archive.version("index.html")
    data, version = archive.read_versioned(INDEX_DATA)
    state = _parse_state(data)
    if state is None:   # none yet, or damaged: read from the records once, which count this run already
        state, new = _scanned(archive), False
    closing, problem = None, None
    try:
        closing = _due(archive, state, filed, now)
    except OSError as exc:
        problem = exc
    for _ in range(CAS_TRIES):
        updated = _with_run(state, filed, new, closing)
        if archive.write_if(INDEX_DATA, json.dumps(updated).encode("utf-8"), version):
            break
        data, version = archive.read_versioned(INDEX_DATA)
        state = _parse_state(data)
        if state is None:
            state, new = _scanned(archive), False
    else:
        raise OSError(f"{INDEX_DATA} kept changing under {CAS_TRIES} tries; the next filing updates it")
    _write_html(archive, updated, html_version)
    if problem is not None:
        raise problem


CAS_TRIES = 20   # filers updating index.json at once: each try that loses re-reads and merges again


def index_state(where: Archive | Path) -> dict[str, Any] | None:
    """index.json as filings keep it ({runs: the newest INDEX_RUNS, newest first; total; closed: {day: runs}}),
    or None when there is none (an archive never filed into since records, or one repaired by hand)."""
    archive = at(where)
    with contextlib.suppress(FileNotFoundError):
        return _parse_state(archive.read(INDEX_DATA))
    return None


def _parse_state(data: bytes | None) -> dict[str, Any] | None:
    try:
        state = json.loads(data) if data is not None else None
    except ValueError:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("runs"), list) or \
            not isinstance(state.get("total"), int) or not isinstance(state.get("closed"), dict):
        return None
    state["runs"] = [r for r in state["runs"] if isinstance(r, dict) and _name(r)]
    return state


def _scanned(archive: Archive) -> dict[str, Any]:
    """The state read from the records: the count and the newest runs from one listing, so a run filed meanwhile is
    in neither (its filer counts it) or in both (its filer finds it there), never in one only."""
    segments = closed_days(archive)
    days = days_filed(archive)
    listed = {day: sorted(_names(archive, [day]), reverse=True) for day in days if day not in segments}
    runs: list[dict[str, Any]] = []
    for day in reversed(days):
        if len(runs) >= INDEX_RUNS:
            break
        if day in segments:
            runs += [r for r in day_runs(archive, day, segments) if _name(r)]
            continue
        for start in range(0, len(listed[day]), READ_CHUNK):
            read = archive.read_many(listed[day][start:start + READ_CHUNK])
            runs += [run for path in listed[day][start:start + READ_CHUNK]
                     if (run := _parsed(read.get(path, b""))) is not None and _name(run)]
    total = sum(n for _, n in segments.values()) + sum(len(paths) for paths in listed.values())
    return {"runs": runs[:INDEX_RUNS], "total": total, "closed": {day: n for day, (_, n) in segments.items()},
            "closed_through": ""}


def _due(archive: Archive, state: dict[str, Any], filed: dict[str, Any], now: datetime) -> tuple[str, int, str] | None:
    """Close the day due now, if any: the filed run's own when it landed in a closed day, else the oldest past day
    not closed yet (the days are listed only while closed_through lags). (day, its runs, closed_through after)."""
    closed, through = state["closed"], str(state.get("closed_through") or "")
    segments = {day: (f"{day}.{n}.jsonl", n) for day, n in closed.items()}
    day = _day_of(filed)
    if day in closed:   # a run filed late into a closed day: the day again
        return day, close_day(archive, day, segments), through
    last_closed = f"{now - timedelta(days=CLOSED_AFTER_DAYS):%Y-%m-%d}"
    if through >= last_closed:
        return None
    waiting = [d for d in days_filed(archive) if d <= last_closed and d not in closed]
    if not waiting:
        return None if through == last_closed else ("", 0, last_closed)
    return waiting[0], close_day(archive, waiting[0], segments), last_closed if len(waiting) == 1 else through


def _with_run(state: dict[str, Any], filed: dict[str, Any], new: bool,
              closing: tuple[str, int, str] | None) -> dict[str, Any]:
    """The state with the filed run among the newest (counted unless the state holds it already: when its record is
    new, or it is missing from the newest runs it belongs among, a filing resumed after its index update was lost),
    and a day closed."""
    runs = {_name(r): r for r in state["runs"]}
    name = _name(filed)
    floor = min(map(_sort_key, runs), default="") if len(runs) >= INDEX_RUNS else ""
    counted = name not in runs and (new or _sort_key(name) > floor)   # a state read from the records has it
    runs[name] = filed
    newest = sorted(runs, key=_sort_key, reverse=True)[:INDEX_RUNS]
    closed = dict(state["closed"])
    through = str(state.get("closed_through") or "")
    if closing is not None:
        day, n, through = closing
        if day and n:
            closed[day] = n
        elif day:
            closed.pop(day, None)
    return {"runs": [runs[p] for p in newest], "total": int(state["total"]) + counted, "closed": closed,
            "closed_through": through}


def _write_html(archive: Archive, state: dict[str, Any], version: str | None) -> None:
    """index.html from `state`, swapped against `version` (read before the state); when another filer wrote it
    meanwhile, the newest state is read again and shown."""
    for _ in range(CAS_TRIES):
        if archive.write_if("index.html", _index_html(state), version):
            return
        version = archive.version("index.html")
        state = index_state(archive) or state
    raise OSError(f"index.html kept changing under {CAS_TRIES} tries; the next filing updates it")


def _names(archive: Archive, days: list[str]) -> set[str]:
    """The record paths of `days`."""
    return {f"{RUNS}/{day}/{name}" for day in days for name in archive.names(f"{RUNS}/{day}") if name.endswith(".json")}


def _day_of(run: dict[str, Any]) -> str:
    return _name(run).rsplit("/", 2)[-2] if _name(run) else ""


def _name(record: dict[str, Any] | None) -> str:
    try:
        return record_path(record) if record is not None else ""
    except ValueError:
        return ""


def _sort_key(path: str) -> str:
    """A record path's order: its day, then its start time (then run id)."""
    parts = path.rsplit("/", 2)
    return f"{parts[-2]}/{parts[-1]}" if len(parts) == 3 else path


# --- reading ---------------------------------------------------------------------------------------------------

def days_filed(where: Archive | Path) -> list[str]:
    """Every day with a record, oldest first."""
    return [d for d in at(where).names(RUNS) if DAY.fullmatch(d)]


def closed_days(archive: Archive) -> dict[str, tuple[str, int]]:
    """{day: (segment file name, runs in it)} of the closed days (the newest segment of a day, if two)."""
    found: dict[str, tuple[str, int]] = {}
    for name in archive.names(DAYS):
        if match := SEGMENT.fullmatch(name):
            day, count = match.group(1), int(match.group(2))
            found[day] = (name, count)   # sorted names: of two for a day (a rewrite under way), either is whole
    return found


def day_runs(where: Archive | Path, day: str, segments: dict[str, tuple[str, int]] | None = None,
             raw_filter: Callable[[str], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Every run that started on `day` (UTC), newest first: its segment merged with the day's records (a record the
    segment missed is read on its own, one the segment holds but that was removed is left out); a day without a
    segment is read a chunk of records at a time, so a reader wanting the newest few reads only those.
    `raw_filter(line)` True skips a segment line before it is parsed."""
    archive = at(where)
    segments = closed_days(archive) if segments is None else segments
    names = sorted((n for n in archive.names(f"{RUNS}/{day}") if n.endswith(".json")), reverse=True)
    held: dict[str, dict[str, Any] | None] = {}
    if day in segments:
        with contextlib.suppress(FileNotFoundError):
            for line in archive.read(f"{DAYS}/{segments[day][0]}").decode("utf-8", "replace").splitlines():
                name = _line_name(line)
                if raw_filter is not None and raw_filter(line):
                    held[name] = None
                    continue
                with contextlib.suppress(ValueError):
                    if isinstance(run := json.loads(line), dict):
                        run.pop("name", None)
                        held[name] = run
    for start in range(0, len(names), READ_CHUNK):
        chunk = names[start:start + READ_CHUNK]
        read = archive.read_many(f"{RUNS}/{day}/{n}" for n in chunk if n not in held)
        for name in chunk:
            if name in held:
                run = held[name]
            else:
                data = read.get(f"{RUNS}/{day}/{name}")
                run = _parsed(data) if data is not None and not (raw_filter and raw_filter(data.decode(
                    "utf-8", "replace"))) else None
            if run is not None:
                yield run


READ_CHUNK = 200   # records read at once from a day without a segment


def _parsed(data: bytes) -> dict[str, Any] | None:
    try:
        run = json.loads(data)
    except ValueError:
        return None
    return run if isinstance(run, dict) else None


def _line_name(line: str) -> str:
    """A segment line's record name, read from its text (a segment line starts with it)."""
    found = re.match(r'\{"name": "([^"\\]+)"', line)
    return found.group(1) if found else line


def runs_newest_first(where: Archive | Path, since: datetime | None = None,
                      raw_filter: Callable[[str], bool] | None = None, limit: int = 0) -> Iterator[dict[str, Any]]:
    """Every run (the first `limit`; 0: all), newest first, day by day (a day before `since`'s is never read)."""
    archive = at(where)
    segments = closed_days(archive)
    floor = f"{since.astimezone(timezone.utc):%Y-%m-%d}" if since else ""
    given = 0
    for day in reversed(days_filed(archive)):
        if day < floor:
            return
        for run in day_runs(archive, day, segments, raw_filter):
            yield run
            given += 1
            if limit and given >= limit:
                return


def read_runs(where: Archive | Path) -> list[dict[str, Any]]:
    """Every run ever filed, oldest first (reads the whole catalogue: for tools, not per run)."""
    return list(reversed(list(runs_newest_first(where))))


def count(where: Archive | Path) -> int:
    """How many runs are filed: the closed days' counts (from their segments' names) plus the other days' records."""
    archive = at(where)
    segments = closed_days(archive)
    return sum(segments[d][1] if d in segments else len(_names(archive, [d])) for d in days_filed(archive))


def record(where: Archive | Path, run_id: str) -> dict[str, Any] | None:
    """One run's record by its id (a runner's id names its start day: that day and the next are read)."""
    archive = at(where)
    if not RUN_ID.fullmatch(run_id):
        return None
    suffix = f"_{run_id}.json"
    if match := re.match(r"(\d{4})(\d{2})(\d{2})-", run_id):
        day = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=timezone.utc)
        candidates = [f"{day:%Y-%m-%d}", f"{day + timedelta(days=1):%Y-%m-%d}", f"{day - timedelta(days=1):%Y-%m-%d}"]
    else:
        candidates = list(reversed(days_filed(archive)))
    for name_day in candidates:
        for name in archive.names(f"{RUNS}/{name_day}"):
            if name.endswith(suffix):
                with contextlib.suppress(FileNotFoundError, ValueError):
                    return json.loads(archive.read(f"{RUNS}/{name_day}/{name}"))
    return None


def filed(where: Archive | Path, run_id: str) -> bool:
    return record(where, run_id) is not None


LOOK_BACK_DAYS = 35   # how far back a schedule entry's previous run is looked for


def previous(where: Archive | Path, entry: str, run_id: str) -> dict[str, Any] | None:
    """The newest run of schedule entry `entry` other than `run_id` that started before it (None when there is none
    in the last LOOK_BACK_DAYS): the status a change is judged against, read from the shared catalogue."""
    archive = at(where)
    this = record(archive, run_id)
    before = this.get("started_at") if this else None
    since = datetime.now(timezone.utc) - timedelta(days=LOOK_BACK_DAYS)
    quoted = json.dumps(entry)
    for run in runs_newest_first(archive, since, raw_filter=lambda line: quoted not in line):
        if run.get("entry") == entry and run.get("run_id") != run_id and \
                (before is None or str(run.get("started_at", "")) < str(before)):
            return run
    return None


# --- closing days, rebuilding ----------------------------------------------------------------------------------

def close_day(where: Archive | Path, day: str, segments: dict[str, tuple[str, int]] | None = None,
              runs: list[dict[str, Any]] | None = None) -> int:
    """(Re)write `day`'s segment and page from its records (and its old segment), and remove an older segment;
    a day with no run left loses both. `runs`: the day's records, oldest first, when the caller holds them all
    (an import, a benchmark's archive): nothing is read. The day's runs."""
    archive = at(where)
    segments = closed_days(archive) if segments is None else segments
    runs = list(reversed(list(day_runs(archive, day, segments)))) if runs is None else runs
    old = segments.get(day)
    if not runs:
        archive.remove([f"{DAYS}/{old[0]}"] if old else [])
        archive.remove([f"archive/{day}.html"])
        segments.pop(day, None)
        return 0
    title = f"aias-runbooks reports of {day} (UTC)"
    archive.write(f"archive/{day}.html", index_template().render(   # the page first: a day with a segment is closed
        runs=[_shown(r) for r in reversed(runs)], total=len(runs), pages=[], base="../", title=title).encode())
    lines = "".join(json.dumps({"name": _name(r).rsplit("/", 1)[-1]} | r) + "\n" for r in runs)
    name = f"{day}.{len(runs)}.jsonl"
    archive.write(f"{DAYS}/{name}", lines.encode("utf-8"))
    if old and old[0] != name:
        archive.remove([f"{DAYS}/{old[0]}"])
    segments[day] = (name, len(runs))
    return len(runs)


def close_days(where: Archive | Path, touched: set[str], now: datetime | None = None) -> None:
    """Close again the days `touched` (runs removed from them), and every day due to close that has no segment yet
    (a prune reads the whole catalogue anyway: a backlog costs it nothing more)."""
    archive = at(where)
    segments = closed_days(archive)
    last_closed = f"{(now or datetime.now(timezone.utc)) - timedelta(days=CLOSED_AFTER_DAYS):%Y-%m-%d}"
    due = {d for d in days_filed(archive) if d <= last_closed and d not in segments}
    for day in sorted(touched | due):
        close_day(archive, day, segments)


def rebuild(where: Archive | Path, now: datetime | None = None) -> None:
    """Every closed day's segment and page, index.json and index.html again, from the records alone (after a prune,
    or to repair a catalogue by hand)."""
    archive = at(where)
    now = now or datetime.now(timezone.utc)
    segments = closed_days(archive)
    days = days_filed(archive)
    last_closed = f"{now - timedelta(days=CLOSED_AFTER_DAYS):%Y-%m-%d}"
    for day in sorted(set(segments) | {d for d in days if d <= last_closed}):
        close_day(archive, day, segments)
    reindex(archive)


def reindex(where: Archive | Path) -> None:
    """index.json and index.html again from the records (after records were removed, or to repair them): swapped
    like a filing's, read again from the records when a filing got in between."""
    archive = at(where)
    html_version = archive.version("index.html")
    for _ in range(CAS_TRIES):
        _, version = archive.read_versioned(INDEX_DATA)
        state = _scanned(archive)
        if archive.write_if(INDEX_DATA, json.dumps(state).encode("utf-8"), version):
            _write_html(archive, state, html_version)
            return
    raise OSError(f"{INDEX_DATA} kept changing under {CAS_TRIES} tries")


# --- pages -----------------------------------------------------------------------------------------------------

def index_template() -> Template:
    """The index page's template, compiled once per process (~15 ms; the runner compiles it while the kernel
    boots)."""
    return _templates.get_template("index.html.j2")


def _index_html(state: dict[str, Any]) -> bytes:
    """index.html: the newest runs and a link to each closed day's page, from index.json's state."""
    pages = [{"href": f"archive/{day}.html", "first": day, "last": day, "runs": n}
             for day, n in sorted(state["closed"].items(), reverse=True)]
    return index_template().render(runs=[_shown(r) for r in state["runs"]], total=max(state["total"], len(
        state["runs"])), pages=pages, base="", title="aias-runbooks reports").encode("utf-8")


def _shown(run: dict[str, Any]) -> dict[str, Any]:
    """A record as a page shows it: its fields as text (a record from elsewhere may hold anything)."""
    return {k: v if isinstance(v, (str, int, float, type(None))) else str(v) for k, v in run.items()}


# --- archives from before records ------------------------------------------------------------------------------

LEGACY = "runs.jsonl"


def upgrade(where: Archive | Path) -> int:
    """An archive from before records (one runs.jsonl): each of its runs becomes a record, then runs.jsonl is
    renamed runs.jsonl.imported and the old pages removed; the number imported. Safe to run twice or at once on
    two hosts (a record's path and content follow from its run)."""
    archive = at(where)
    if archive.local is None or not (archive.local / LEGACY).is_file():
        return 0
    imported = 0
    with open(archive.local / LEGACY, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            with contextlib.suppress(ValueError):
                run = json.loads(line)
                if isinstance(run, dict) and _name(run):
                    archive.write(record_path(run), json.dumps(run).encode("utf-8"))
                    imported += 1
    with contextlib.suppress(FileNotFoundError):
        os.replace(archive.local / LEGACY, archive.local / f"{LEGACY}.imported")
    for stale in (archive.local / "archive").glob("runs-*.html"):
        stale.unlink(missing_ok=True)
    (archive.local / ".catalog.json").unlink(missing_ok=True)
    (archive.local / ".catalog.lock").unlink(missing_ok=True)
    rebuild(archive)
    return imported
