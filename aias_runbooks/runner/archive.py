"""The archive of past runs: `aias-runbooks reports` lists them (filtered), `reports prune` applies retention.

The catalogue (catalog.py: one record per run, by day) is read newest first, a day at a time: `--since` skips the
days before it, a segment line a filter cannot match is never parsed, and the newest 100 of 50,000 runs read one
or two days. Prune deletes old report folders, then their records, never a run tied to an incident, and closes the
days it touched again. A record is text anyone with write access can edit: prune deletes only a
`<YYYY-MM-DD>/<HHMMSS>_<name>` folder of the archive that no kept record names. The same code serves a local folder
and an S3 prefix (store.Archive).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import catalogue
from ..errors import UsageError
from ..printable import show
from ..timestamps import parse_timestamp, recorded_time
from . import catalog
from .store import Archive

STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
DURATION = re.compile(r"(\d{1,6})([mhdw])")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_KEEP_DAYS = 36500
REPORT_DIR = re.compile(r"(\d{4}-\d{2}-\d{2})/\d{6}_[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)   # make_run_dir's
COLUMNS = [("started_at", "started (UTC)"), ("run_id", "run id"), ("runbook", "runbook"), ("env", "env"),
           ("incident", "incident"), ("status", "status"), ("top_finding", "top finding"), ("report_dir", "report")]


@dataclass(frozen=True)
class Filters:
    """What `reports` keeps; None is "any"."""

    since: datetime | None = None
    runbook: str | None = None
    status: str | None = None
    incident: str | None = None

    @property
    def filtering(self) -> bool:
        return any(v is not None for v in (self.since, self.runbook, self.status, self.incident))

    def cheap_miss(self, line: str) -> bool:
        """True when the raw line cannot match (a value the filter wants is not in it at all): no parse needed."""
        return any(value is not None and value not in line for value in (self.runbook, self.status, self.incident))

    def match(self, run: dict[str, Any]) -> bool:
        if self.runbook is not None and run.get("runbook") != self.runbook:
            return False
        if self.status is not None and run.get("status") != self.status:
            return False
        if self.incident is not None and run.get("incident") != self.incident:
            return False
        if self.since is not None:
            started = parse_time(run.get("started_at"))
            return started is not None and started >= self.since
        return True


def filters(since: str | None = None, runbook: str | None = None, status: str | None = None,
            incident: str | None = None, now: datetime | None = None) -> Filters:
    """The command line's filters, checked; UsageError names what is valid."""
    from .request import INCIDENT
    if status is not None and status.strip().upper() not in STATUSES:
        raise UsageError(f"--status {show(status)} is not a status; valid: {', '.join(STATUSES)}")
    if runbook is not None and not catalogue.SLUG.fullmatch(runbook):
        raise UsageError(f"--runbook {show(runbook)} is not a runbook name; valid: "
                         f"{', '.join(catalogue.slugs()) or 'none'}")
    if incident is not None and not INCIDENT.fullmatch(incident):
        raise UsageError(f"--incident {show(incident)} is not an incident id: 1 to 64 letters, digits, '.', '_' "
                         "or '-' (e.g. INC-1234)")
    return Filters(parse_since(since, now) if since is not None else None, runbook,
                   status.strip().upper() if status is not None else None, incident)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A date (2026-11-20, from its midnight UTC), a timestamp with a UTC offset, or a duration back from now
    (90m, 24h, 7d, 2w); UsageError naming the forms otherwise."""
    value = text.strip()
    now = now or datetime.now(timezone.utc)
    if match := DURATION.fullmatch(value):
        return now - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    moment = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            moment = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        except ValueError:
            moment = None
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})", value):
        with contextlib.suppress(ValueError):
            moment = parse_timestamp(value)
    if moment is None:
        raise UsageError(f"--since {show(text)} is neither a date nor a duration; valid: a UTC date (2026-11-20), "
                         "a timestamp with offset (2026-11-20T08:00:00+00:00), or a duration back from now: "
                         "a whole number with m, h, d or w (90m, 24h, 7d, 2w)")
    return moment


def parse_time(text: Any) -> datetime | None:
    """started_at as the runner writes it (ISO 8601 with offset); None when it is not one."""
    return recorded_time(text)


def runs(where: Archive | Path, keep: Filters) -> Iterator[dict[str, Any]]:
    """Every filed run that `keep` matches, newest first (a day before --since's is never read; a segment line that
    cannot match is never parsed)."""
    for run in catalog.runs_newest_first(where, keep.since, keep.cheap_miss):
        if keep.match(run):
            yield run


def listing(where: Archive | Path, keep: Filters, limit: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The matching runs newest first (the first `limit` of them; 0: all) and how many matched in all.

    Without a filter the newest runs and the count are index.json's, as every filing keeps them (one read, however
    large the archive); with one, every day in range is read to count the matches.
    """
    if limit and not keep.filtering:   # the newest runs and the count as filings keep them: one read
        state = catalog.index_state(where)
        if state is not None and (limit <= len(state["runs"]) or state["total"] <= len(state["runs"])):
            return state["runs"][:limit], state["total"]
        return list(catalog.runs_newest_first(where, limit=limit)), catalog.count(where)
    shown: list[dict[str, Any]] = []
    total = 0
    for run in runs(where, keep):
        total += 1
        if not limit or len(shown) < limit:
            shown.append(run)
    return shown, total


def show_reports(where: Archive | Path, since: str | None = None, runbook: str | None = None,
                 status: str | None = None, incident: str | None = None, limit: int = 0) -> list[str]:
    """`aias-runbooks reports`: the lines to print (a table, then a count); UsageError for a bad filter, and for a
    runbook name that is neither a runbook nor in the archive."""
    keep = filters(since, runbook, status, incident)
    archive = catalog.at(where)
    rows, total = listing(archive, keep, limit)
    slugs = catalogue.slugs()
    if runbook is not None and not total and runbook not in slugs:
        raise UsageError(f"--runbook {runbook!r} is no runbook and has no run in the archive; valid: "
                         f"{', '.join(slugs) or 'none'}")
    if not total:
        return [f"no archived run matches in {archive.where()}"]
    shown = f"{len(rows)} of {total}" if len(rows) < total else f"{total}"
    more = " (--limit 0 shows all)" if len(rows) < total else ""
    return [table(rows), f"{shown} run(s), newest first{more}; reports under {archive.where()}"]


def table(rows: list[dict[str, Any]]) -> str:
    """Runs as a left-aligned text table, one line each (no pandas: this must stay fast on a big archive)."""
    cells = [[_cell(run.get(key)) for key, _ in COLUMNS] for run in rows]
    widths = [max([len(title), *(len(row[i]) for row in cells)]) for i, (_, title) in enumerate(COLUMNS)]
    lines = ["  ".join(title.ljust(w) for (_, title), w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    if text.isprintable():
        return text[:120]
    return "".join(c if c.isprintable() else "?" for c in text)[:120]   # a runs.jsonl edited by hand stays one line


# --- retention -------------------------------------------------------------------------------------------------

@dataclass
class Pruned:
    """What prune removed (or, in a dry run, would remove) and kept."""

    cutoff: datetime
    removed: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0
    kept_for_incidents: int = 0
    remaining: int = 0
    missing_folders: int = 0
    refused: int = 0            # removed records whose report_dir was left alone (see prune)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (f"{verb} {len(self.removed)} run(s) started before {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({_size(self.bytes)} of reports); kept {self.kept_for_incidents} older run(s) tied to an incident; "
                f"{self.remaining} run(s) {'would remain' if self.dry_run else 'remain'}")
        if self.missing_folders:
            text += f"; {self.missing_folders} of those report folder(s) were already gone"
        if self.refused:
            text += (f"; {self.refused} record(s) {verb} but their report_dir left alone (not a <YYYY-MM-DD>/"
                     "<HHMMSS>_<name> folder of this archive, still named by a kept run, or an incident's run)")
        return text + (" (dry run: nothing changed)" if self.dry_run else "")


def prune(where: Archive | Path, keep_days: int, dry_run: bool = False, now: datetime | None = None) -> Pruned:
    """Delete the report folders and records of runs started more than `keep_days` ago, except runs tied to an
    incident; then close the days touched again and rewrite the index. A dry run only counts.

    A record is text anyone with write access can edit, so a folder is deleted only when it is a report folder
    (report_folder: `<YYYY-MM-DD>/<HHMMSS>_<name>` under the root, no symbolic link on the way: never a day, the
    bundles, anything outside), no kept run names it (a recent run's, an incident's), and its verdict.json names no
    incident and no other run. Otherwise the old record goes and its report_dir stays (`refused`).

    No lock: old runs are never filed again, and a run filed meanwhile is a new record on an open day, which prune
    does not remove. Folders go first, then records: stopped half way, a prune leaves records whose folder is gone
    (the next prune removes them), never a folder that no record names.
    """
    if not 1 <= keep_days <= MAX_KEEP_DAYS:
        raise UsageError(f"--keep-days {keep_days} is out of range; valid: whole days from 1 to {MAX_KEEP_DAYS}")
    archive = catalog.at(where)
    result = Pruned(cutoff=(now or datetime.now(timezone.utc)) - timedelta(days=keep_days), dry_run=dry_run)
    named: set[str] = set()       # the report folders (<date>/<name>) kept runs name
    for run in catalog.runs_newest_first(archive):
        started = parse_time(run.get("started_at"))
        if started is None or started >= result.cutoff or run.get("incident"):
            result.kept_for_incidents += bool(started and started < result.cutoff)
            named.update(_named_folder(run))
            result.remaining += 1
        else:
            result.removed.append(run)
    doomed: dict[str, None] = {}
    for run in result.removed:
        rel = report_folder(archive, run)
        if rel is None or rel in named or _owned_elsewhere(archive, rel, run):
            result.refused += 1
        elif archive.names(rel):
            result.bytes += 0 if rel in doomed else archive.folder_bytes(rel)
            doomed[rel] = None
        else:
            result.missing_folders += 1
    if dry_run or not result.removed:
        return result
    for rel in doomed:
        archive.remove_folder(rel)
    if archive.local is not None:
        for day in {rel.split("/", 1)[0] for rel in doomed}:
            with contextlib.suppress(OSError):
                (archive.local / day).rmdir()   # the day's folder, once its last report is gone
    archive.remove(catalog.record_path(run) for run in result.removed)
    catalog.close_days(archive, {catalog.record_path(run).rsplit("/", 2)[-2] for run in result.removed})
    catalog.reindex(archive)
    return result


def _named_folder(run: dict[str, Any]) -> list[str]:
    """The report folder (`<date>/<name>`) a kept run names, or names a path inside, however it spells it (`..`,
    `./`)."""
    rel = run.get("report_dir")
    if not isinstance(rel, str) or not rel:
        return []
    if REPORT_DIR.fullmatch(rel):
        return [rel]                       # as the runner writes it: no path arithmetic
    parts = Path(os.path.normpath(rel)).parts
    return ["/".join(parts[:2])] if len(parts) >= 2 and parts[0] not in ("..", "/") else []


def _owned_elsewhere(archive: Archive, rel: str, run: dict[str, Any]) -> bool:
    """True when the folder's own verdict.json says it is an incident's run or another run than the record's."""
    try:
        verdict = json.loads(archive.read(f"{rel}/verdict.json"))
    except (OSError, ValueError):
        return False
    if not isinstance(verdict, dict):
        return False
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    owner = verdict.get("run_id") or prov.get("run_id")
    return bool(prov.get("incident") or verdict.get("incident")) or (owner is not None and owner != run.get("run_id"))


def report_folder(where: Archive | Path, run: dict[str, Any]) -> str | None:
    """The run's report folder (relative to the archive root), or None when its report_dir is not exactly
    `<YYYY-MM-DD>/<HHMMSS>_<name>` (as report.make_run_dir names it) with, in a local archive, no symbolic link on
    the way: a hand-edited record never makes prune or bundle take a day folder, the bundles, or anything outside."""
    rel = run.get("report_dir")
    match = REPORT_DIR.fullmatch(rel) if isinstance(rel, str) else None
    if match is None:
        return None
    try:
        datetime.strptime(match.group(1), "%Y-%m-%d")
    except ValueError:
        return None
    archive = catalog.at(where)
    if archive.local is not None:
        top = archive.local.resolve()
        if (top / rel).resolve() != top / rel:
            return None
    return rel


def folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
