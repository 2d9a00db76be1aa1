"""The archive of past runs: `aias-runbooks reports` lists them (filtered), `reports prune` applies retention.

runs.jsonl is the archive's catalogue (catalog.py files every run into it). Listing streams it line by line: a
filter is tried on the raw line before the line is parsed, and runs are sorted on the started_at read from the
text, so over 50,000 runs only those shown (or those a narrow filter must confirm) are parsed. Prune deletes old
report folders, then rewrites runs.jsonl under the catalogue's lock (a run filed meanwhile is kept), never touches
a run tied to an incident, and pages the archive again with catalog.rebuild. A catalogue line is text anyone can
edit: prune deletes only a `<YYYY-MM-DD>/<HHMMSS>_<name>` folder of the archive that no kept line names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import catalogue
from ..errors import UsageError
from ..printable import show
from ..records import write_atomic
from ..timestamps import parse_timestamp
from . import catalog

STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
DURATION = re.compile(r"(\d{1,6})([mhdw])")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_KEEP_DAYS = 36500
STARTED = re.compile(r'"started_at":\s*"([^"\\]*)"')   # as json.dumps writes it; a line without one sorts last
REPORT_DIR = re.compile(r"(\d{4}-\d{2}-\d{2})/\d{6}_[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)   # make_run_dir's
NAMED = re.compile(r'"report_dir":\s*("(?:[^"\\]|\\.)*")')   # a report_dir in a line that does not parse
COLUMNS = [("started_at", "started (UTC)"), ("run_id", "run id"), ("runbook", "runbook"), ("env", "env"),
           ("incident", "incident"), ("status", "status"), ("top_finding", "top finding"), ("report_dir", "report")]


@dataclass(frozen=True)
class Filters:
    """What `reports` keeps; None is "any"."""

    since: datetime | None = None
    runbook: str | None = None
    status: str | None = None
    incident: str | None = None

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
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def runs(output_root: Path, keep: Filters) -> Iterator[dict[str, Any]]:
    """Every run of runs.jsonl that `keep` matches, in file order (a torn or corrupt line is skipped)."""
    path = output_root / "runs.jsonl"
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if keep.cheap_miss(line):
                continue
            try:
                run = json.loads(line)
            except ValueError:
                continue
            if isinstance(run, dict) and keep.match(run):
                yield run


def listing(output_root: Path, keep: Filters, limit: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The matching runs newest first (the first `limit` of them; 0: all) and how many matched in all.

    Parsing is what costs on a big archive, so a line is sorted (and judged by --since) on its started_at read
    straight from the text, and parsed only when shown or when a runbook, status or incident filter must be
    confirmed on it. Without such a filter the count is of lines with a started_at: a corrupt one among those
    not shown would be counted (the runner writes whole lines under a lock; only a killed one leaves a torn line).
    """
    path = output_root / "runs.jsonl"
    if not path.is_file():
        return [], 0
    candidates: list[tuple[str, str]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if keep.cheap_miss(line):
                continue
            found = STARTED.search(line)
            if found is None and _parsed(line) is None:   # a blank, corrupt or torn line: never counted
                continue
            started = found.group(1) if found else ""
            if keep.since is not None and ((moment := parse_time(started)) is None or moment < keep.since):
                continue
            candidates.append((started, line))
    candidates.sort(key=lambda c: c[0], reverse=True)
    exact = any(v is not None for v in (keep.runbook, keep.status, keep.incident))
    shown: list[dict[str, Any]] = []
    total = 0 if exact else len(candidates)
    step = limit if limit and not exact else max(len(candidates), 1)   # without a filter, parse only what is shown
    for start in range(0, len(candidates), step):
        for run in _parse_many([line for _, line in candidates[start:start + step]]):
            if run is None or not keep.match(run):
                total -= not exact
                continue
            total += exact
            if not limit or len(shown) < limit:
                shown.append(run)
        if limit and not exact and len(shown) >= limit:
            break
    return shown, total


def show_reports(output_root: Path, since: str | None = None, runbook: str | None = None,
                 status: str | None = None, incident: str | None = None, limit: int = 0) -> list[str]:
    """`aias-runbooks reports`: the lines to print (a table, then a count); UsageError for a bad filter, and for a
    runbook name that is neither a runbook nor in the archive."""
    keep = filters(since, runbook, status, incident)
    rows, total = listing(output_root, keep, limit)
    slugs = catalogue.slugs()
    if runbook is not None and not total and runbook not in slugs:
        raise UsageError(f"--runbook {runbook!r} is no runbook and has no run in the archive; valid: "
                         f"{', '.join(slugs) or 'none'}")
    if not total:
        return [f"no archived run matches in {output_root / 'runs.jsonl'}"]
    shown = f"{len(rows)} of {total}" if len(rows) < total else f"{total}"
    more = " (--limit 0 shows all)" if len(rows) < total else ""
    return [table(rows), f"{shown} run(s), newest first{more}; reports under {output_root}"]


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
    refused: int = 0            # removed lines whose report_dir was left alone (see prune)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (f"{verb} {len(self.removed)} run(s) started before {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({_size(self.bytes)} of reports); kept {self.kept_for_incidents} older run(s) tied to an incident; "
                f"{self.remaining} run(s) {'would remain' if self.dry_run else 'remain'}")
        if self.missing_folders:
            text += f"; {self.missing_folders} of those report folder(s) were already gone"
        if self.refused:
            text += (f"; {self.refused} line(s) {verb} but their report_dir left alone (not a <YYYY-MM-DD>/"
                     "<HHMMSS>_<name> folder of this archive, still named by a kept line, or an incident's run)")
        return text + (" (dry run: nothing changed)" if self.dry_run else "")


def prune(output_root: Path, keep_days: int, dry_run: bool = False, now: datetime | None = None) -> Pruned:
    """Delete the report folders of runs started more than `keep_days` ago and their lines in runs.jsonl, except
    runs tied to an incident; then page the archive again. A dry run only counts.

    A line is text anyone can edit, so a folder is deleted only when it is a report folder (report_folder:
    `<YYYY-MM-DD>/<HHMMSS>_<name>` under the root, no symbolic link on the way: never a day, the bundles, anything
    outside), no kept line names it (a recent run's, an incident's, one that does not parse), and its verdict.json
    names no incident and no other run. Otherwise the old line goes and its report_dir stays (`refused`).

    The report folders are deleted first, without the lock (old reports are never written again, and a run being
    filed must not wait while a disk deletes thousands of folders); then, under the catalogue's lock, runs.jsonl is
    read again and rewritten without exactly the removed lines, so a run filed meanwhile is kept, and the archive is
    paged again. Stopped half way, a prune leaves lines whose folder is gone (the next prune removes them), never a
    folder that no line names. A line that cannot be parsed or dated is kept.
    """
    if not 1 <= keep_days <= MAX_KEEP_DAYS:
        raise UsageError(f"--keep-days {keep_days} is out of range; valid: whole days from 1 to {MAX_KEEP_DAYS}")
    result = Pruned(cutoff=(now or datetime.now(timezone.utc)) - timedelta(days=keep_days), dry_run=dry_run)
    path = output_root / "runs.jsonl"
    if not path.is_file():
        return result
    top = output_root.resolve()
    removed_lines: set[str] = set()
    named: set[str] = set()       # the report folders (<date>/<name>) kept lines name, or name a file inside
    parseable = 0
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            run = _parsed(line)
            parseable += run is not None
            started = parse_time(run.get("started_at")) if run else None
            if run is None or started is None or started >= result.cutoff or run.get("incident"):
                result.kept_for_incidents += bool(run and started and started < result.cutoff)
                named.update(_named_folder(top, run, line))
                continue
            result.removed.append(run)
            removed_lines.add(line.rstrip("\n"))
    doomed: dict[Path, None] = {}
    for run in result.removed:
        folder = report_folder(top, run)
        if folder is None or run["report_dir"] in named or _owned_elsewhere(folder, run):
            result.refused += 1
        elif folder.is_dir():
            result.bytes += 0 if folder in doomed else folder_bytes(folder)
            doomed[folder] = None
        else:
            result.missing_folders += 1
    result.remaining = parseable - len(result.removed)
    if dry_run or not result.removed:
        return result
    for folder in doomed:
        with contextlib.suppress(FileNotFoundError):   # a prune running beside this one took it first
            shutil.rmtree(folder)
    for day in {folder.parent for folder in doomed} - {top}:
        with contextlib.suppress(OSError):
            day.rmdir()   # the day's folder, once its last report is gone
    with catalog.locked(output_root):
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            kept = [line.rstrip("\n") + "\n" for line in fh if line.rstrip("\n") not in removed_lines]
        write_atomic(path, "".join(kept).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        catalog.rebuild(output_root)
    result.remaining = sum(1 for line in kept if _parsed(line) is not None)
    return result


def _named_folder(top: Path, run: dict[str, Any] | None, line: str) -> list[str]:
    """The report folder (`<date>/<name>`, as report_dir spells it) a kept line names, or names a path inside,
    however it spells it (`..`, `./`, absolute): read from the raw text when the line does not parse."""
    rel = run.get("report_dir") if run is not None else None
    if run is None and (found := NAMED.search(line)):
        with contextlib.suppress(ValueError):
            rel = json.loads(found.group(1))
    if not isinstance(rel, str) or not rel:
        return []
    if REPORT_DIR.fullmatch(rel):
        return [rel]                       # as the runner writes it: no path arithmetic
    parts = Path(os.path.relpath(os.path.normpath(top / rel), top)).parts
    return ["/".join(parts[:2])] if len(parts) >= 2 and parts[0] != ".." else []


def _owned_elsewhere(folder: Path, run: dict[str, Any]) -> bool:
    """True when the folder's own verdict.json says it is an incident's run or another run than the line's."""
    try:
        verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(verdict, dict):
        return False
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    owner = verdict.get("run_id") or prov.get("run_id")
    return bool(prov.get("incident") or verdict.get("incident")) or (owner is not None and owner != run.get("run_id"))


def _parse_many(lines: list[str], chunk: int = 2000) -> Iterator[dict[str, Any] | None]:
    """Each line parsed (None if it is not a JSON object), a chunk of lines in one json.loads call (a third
    faster than one call a line); a chunk holding a corrupt line is parsed line by line."""
    for start in range(0, len(lines), chunk):
        part = lines[start:start + chunk]
        try:
            runs = json.loads("[" + ",".join(part) + "]")
        except ValueError:
            runs = None
        if runs is None or len(runs) != len(part):   # a line holding two values would shift the rest
            yield from (_parsed(line) for line in part)
        else:
            yield from (run if isinstance(run, dict) else None for run in runs)


def _parsed(line: str) -> dict[str, Any] | None:
    try:
        run = json.loads(line)
    except ValueError:
        return None
    return run if isinstance(run, dict) else None


def report_folder(top: Path, run: dict[str, Any]) -> Path | None:
    """The run's report folder, or None when its report_dir is not exactly `<YYYY-MM-DD>/<HHMMSS>_<name>` (as
    report.make_run_dir names it) under the output root `top` (resolved) with no symbolic link on the way: a
    hand-edited catalogue never makes prune or bundle take a day folder, the bundles, or anything outside."""
    rel = run.get("report_dir")
    match = REPORT_DIR.fullmatch(rel) if isinstance(rel, str) else None
    if match is None:
        return None
    try:
        datetime.strptime(match.group(1), "%Y-%m-%d")
    except ValueError:
        return None
    folder = top / rel
    return folder if folder.resolve() == folder else None


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
