"""The console's read-only pages (viewer): the runs (filtered), a run's report, a report's files, an incident, a
runbook's recent statuses and judged numbers.

The unfiltered runs page is index.json's newest runs (one read however large the archive); a filtered one reads
the catalogue day by day, newest first, and stops at PAGE matches (a segment line a filter cannot match is never
parsed). Every path and query value is checked against the project's own patterns first: 400 with one line.
A report file is served only when it is a plain file named directly in a catalogued report folder: no `..`, no
encoded slash, no hidden name, no symbolic link anywhere on the way (404 with one line otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import catalogue
from ..errors import UsageError
from ..printable import show
from ..runner import archive as archives
from ..runner import catalog
from ..runner.request import ENV_NAME, INCIDENT
from .app import PREFIX, Console
from .auth import requires

PAGE = 100                      # runs on one runs page
RUNBOOK_RUNS = 50               # a runbook page's recent runs
RUNBOOK_LOOK_BACK_DAYS = 90     # how far back a runbook page (and "previous run") looks
CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
CURSOR = re.compile(r"\d{4}-\d{2}-\d{2}/\d{12}_[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.json")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TEXT_TYPES = {".json": "application/json", ".txt": "text/plain", ".csv": "text/plain", ".log": "text/plain",
              ".md": "text/plain", ".jsonl": "text/plain"}
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"
STATUSES = archives.STATUSES


class Refused(Exception):
    """A bad path or query value: (status, one line)."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status, self.line = status, line


def routes(console: Console) -> list[web.RouteDef]:
    """The read-only pages' routes."""
    def page(handler: Any) -> Any:
        @requires("viewer")
        async def handled(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(console, request)
            except Refused as refused:
                return web.Response(status=refused.status, text=refused.line + "\n")
        handled.__name__ = handler.__name__
        return handled
    return [web.get(f"{PREFIX}/", page(runs_page)), web.get(f"{PREFIX}/runs/{{run_id}}", page(run_page)),
            web.get(f"{PREFIX}/files/{{path:.+}}", page(file_page)),
            web.get(f"{PREFIX}/incidents/{{incident}}", page(incident_page)),
            web.get(f"{PREFIX}/incidents/{{incident}}/bundle", page(bundle_download)),
            web.get(f"{PREFIX}/runbooks/{{slug}}", page(runbook_page))]


# --- values --------------------------------------------------------------------------------------------------------

def run_id_of(text: str) -> str:
    if not catalog.RUN_ID.fullmatch(text or ""):
        raise Refused(400, f"run id {show(text)} is not valid; valid: 1 to 64 letters, digits, '.', '_' or '-' "
                      "(as the runs page lists them, e.g. 20261207-195238-a826)")
    return text


def incident_of(text: str) -> str:
    if not INCIDENT.fullmatch(text or ""):
        raise Refused(400, f"incident {show(text)} is not an incident id; valid: 1 to 64 letters, digits, '.', '_' "
                      "or '-' (e.g. INC-1234)")
    return text


def slug_of(text: str) -> str:
    if not catalogue.SLUG.fullmatch(text or "") or len(text) > 64:
        raise Refused(400, f"runbook {show(text)} is not a runbook name; valid: lowercase letters, digits and '-' "
                      f"(e.g. {', '.join(catalogue.slugs()[:3]) or 'health-check'})")
    return text


@dataclass
class RunFilter:
    """The runs page's filters (None: any) and its cursor (`before`: list runs filed before this record)."""

    runbook: str | None = None
    env: str | None = None
    status: str | None = None
    incident: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: str | None = None
    given: dict[str, str] = field(default_factory=dict)   # the values as asked, for the form and links

    @property
    def filtering(self) -> bool:
        return any(v is not None for v in (self.runbook, self.env, self.status, self.incident, self.code,
                                           self.since, self.until))

    def cheap_miss(self, line: str) -> bool:
        """True when the raw record text cannot match (a wanted value is not in it at all)."""
        return any(v is not None and v not in line for v in (self.runbook, self.env, self.status, self.incident))

    def match(self, run: dict[str, Any]) -> bool:
        for key in ("runbook", "env", "status", "incident"):
            if getattr(self, key) is not None and run.get(key) != getattr(self, key):
                return False
        if self.code is not None and not has_code(run, self.code):
            return False
        if self.since is not None or self.until is not None:
            started = archives.parse_time(run.get("started_at"))
            if started is None or (self.since and started < self.since) or (self.until and started >= self.until):
                return False
        return self.before is None or _position(run) < self.before


def has_code(run: dict[str, Any], code: str) -> bool:
    """The run found `code`: its record's codes, or for a record from before codes were kept, its top finding."""
    codes = run.get("codes")
    return code in codes if isinstance(codes, list) else run.get("top_finding") == code


def run_filter(query: Any, now: datetime | None = None) -> RunFilter:
    """The runs page's query checked; Refused(400, one line) naming what is valid."""
    def value(key: str) -> str | None:
        text = query.get(key, "")
        return text.strip() or None if isinstance(text, str) else None
    given = {k: v for k in ("runbook", "env", "status", "incident", "code", "since", "until") if (v := value(k))}
    try:
        keep = archives.filters(None, given.get("runbook"), given.get("status"), given.get("incident"))
    except UsageError as exc:
        raise Refused(400, str(exc).lstrip("-")) from None
    env, code, before = given.get("env"), given.get("code"), value("before")
    if env is not None and not ENV_NAME.fullmatch(env):
        raise Refused(400, f"env {show(env)} is not an environment name; valid: 1 to 64 letters, digits, '_' or '-'")
    if code is not None and not CODE.fullmatch(code):
        raise Refused(400, f"code {show(code)} is not a finding code; valid: capitals, digits and '_' "
                      "(e.g. API_DOWN)")
    if before is not None and not CURSOR.fullmatch(before):
        raise Refused(400, "before is not a runs page position; valid: the value an 'older' link carries")
    moments = {}
    for key in ("since", "until"):
        if key in given:
            try:
                moments[key] = archives.parse_since(given[key], now)
            except UsageError as exc:
                raise Refused(400, str(exc).replace("--since", key)) from None
    return RunFilter(keep.runbook, env, keep.status, keep.incident, code, moments.get("since"), moments.get("until"),
                     before, given)


def _position(run: dict[str, Any]) -> str:
    """A record's place in the catalogue (day/time_runid.json): the order runs pages list them in."""
    try:
        return "/".join(catalog.record_path(run).rsplit("/", 2)[-2:])
    except ValueError:
        return ""


# --- the runs page ---------------------------------------------------------------------------------------------

def newest_runs(console: Console, keep: RunFilter, limit: int = PAGE) -> tuple[list[dict[str, Any]], bool, int | None]:
    """(the first `limit` matching runs newest first, whether there are older ones, the archive's total when
    known). Unfiltered from the start: index.json's newest runs; else the catalogue day by day."""
    archive = console.store()
    if not keep.filtering and keep.before is None:
        state = catalog.index_state(archive)
        if state is not None and (len(state["runs"]) > limit or state["total"] <= len(state["runs"])):
            return state["runs"][:limit], state["total"] > limit, state["total"]
    found: list[dict[str, Any]] = []
    segments = catalog.closed_days(archive)
    first = f"{keep.since:%Y-%m-%d}" if keep.since else ""
    last = min(filter(None, [keep.before[:10] if keep.before else None,
                             f"{keep.until:%Y-%m-%d}" if keep.until else None]), default=None)
    for day in reversed(catalog.days_filed(archive)):
        if last is not None and day > last:
            continue
        if day < first:
            break
        for run in catalog.day_runs(archive, day, segments, keep.cheap_miss):
            if keep.match(run):
                if len(found) == limit:
                    return found, True, None
                found.append(run)
    return found, False, None


async def runs_page(console: Console, request: web.Request) -> web.StreamResponse:
    keep = run_filter(request.query)
    runs, older, total = await asyncio.to_thread(newest_runs, console, keep)
    older_link = None
    if older and runs:
        older_link = f"{PREFIX}/?" + _query(keep.given | {"before": _position(runs[-1])})
    return console.render(request, "runs.html", runs=[_row(r) for r in runs], keep=keep.given, statuses=STATUSES,
                          total=total, older=older_link, filtering=keep.filtering, page=PAGE)


def _query(values: dict[str, str]) -> str:
    from urllib.parse import urlencode
    return urlencode(values)


def _row(run: dict[str, Any]) -> dict[str, Any]:
    """A record as a page shows it: its fields as short text (a record may hold anything)."""
    return {k: (v if isinstance(v, (str, int, float, type(None))) else json.dumps(v, default=str))
            for k, v in run.items()}


# --- a run ---------------------------------------------------------------------------------------------------------

def run_view(console: Console, run_id: str) -> dict[str, Any]:
    """A filed run: its record, verdict, files and the previous run of its runbook; Refused(404) when unknown."""
    archive = console.store()
    record = catalog.record(archive, run_id)
    if record is None:
        raise Refused(404, f"no run {run_id} is filed in {archive.where()}; the runs page lists those that are")
    rel = archives.report_folder(archive, record)
    verdict: dict[str, Any] = {}
    files: list[str] = []
    if rel is not None:
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(archive.read(f"{rel}/verdict.json"))
            verdict = loaded if isinstance(loaded, dict) else {}
        with contextlib.suppress(OSError):
            files = sorted(n for n in archive.names(rel) if FILE_NAME.fullmatch(n))
    findings = [f for f in verdict.get("findings", []) if isinstance(f, dict)]
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    return {"run": _row(record), "verdict": verdict, "findings": findings, "provenance": prov,
            "parameters": prov.get("parameters") if isinstance(prov.get("parameters"), dict) else {},
            "files": files, "folder": rel, "previous": previous_run(console, record)}


def previous_run(console: Console, run: dict[str, Any]) -> dict[str, Any] | None:
    """The newest run of the same runbook (and environment) that started before `run`, within
    RUNBOOK_LOOK_BACK_DAYS."""
    started = archives.parse_time(run.get("started_at"))
    if started is None or not isinstance(run.get("runbook"), str):
        return None
    keep = RunFilter(runbook=run["runbook"], env=run.get("env") if isinstance(run.get("env"), str) else None,
                     since=started - timedelta(days=RUNBOOK_LOOK_BACK_DAYS), before=_position(run))
    found, _, _ = newest_runs(console, keep, 1)
    return found[0] if found else None


async def run_page(console: Console, request: web.Request) -> web.StreamResponse:
    view = await asyncio.to_thread(run_view, console, run_id_of(request.match_info["run_id"]))
    return console.render(request, "run.html", **view)


# --- a report's files ----------------------------------------------------------------------------------------------

NOT_SERVED = ("no such report file; valid: /console/files/<YYYY-MM-DD>/<report folder>/<file name> of a "
              "catalogued report, as a run's page links them")


def report_file(console: Console, raw_path: str) -> tuple[str, bytes]:
    """(file name, bytes) of a plain file directly in a catalogued report folder; Refused(404, one line) for
    anything else: `..`, absolute paths, encoded slashes or backslashes, NUL, hidden names, symbolic links."""
    lowered = raw_path.lower()
    if any(bad in lowered for bad in ("%2f", "%5c", "%00", "\\", "\x00")) or "\\" in raw_path:
        raise Refused(404, NOT_SERVED)
    prefix = f"{PREFIX}/files/"
    if not raw_path.startswith(prefix):
        raise Refused(404, NOT_SERVED)
    from urllib.parse import unquote
    rel = unquote(raw_path[len(prefix):])
    parts = rel.split("/")
    if len(parts) != 3 or "\\" in rel or "\x00" in rel or any(p in ("", ".", "..") or p.startswith(".")
                                                                  for p in parts):
        raise Refused(404, NOT_SERVED)
    folder, name = "/".join(parts[:2]), parts[2]
    if not archives.REPORT_DIR.fullmatch(folder) or not FILE_NAME.fullmatch(name):
        raise Refused(404, NOT_SERVED)
    archive = console.store()
    if not _catalogued(console, folder):
        raise Refused(404, NOT_SERVED)
    if archive.local is not None:
        return name, _read_local(archive.local, [*parts])
    try:
        return name, archive.read(f"{folder}/{name}")
    except (OSError, ValueError):
        raise Refused(404, NOT_SERVED) from None


def _catalogued(console: Console, folder: str) -> bool:
    """True when a catalogue record of the folder's day names exactly this report folder."""
    quoted = json.dumps(folder)
    day = folder[:10]
    for run in catalog.day_runs(console.store(), day, raw_filter=lambda line: folder not in line and
                                quoted not in line):
        if run.get("report_dir") == folder:
            return True
    return False


def _read_local(root: Path, parts: list[str]) -> bytes:
    """The file at root/parts, each part lstat'ed on the way: a symbolic link or anything but a folder (then a
    regular file at the end) is refused."""
    where = root
    for number, part in enumerate(parts):
        where = where / part
        try:
            mode = os.lstat(where).st_mode
        except OSError:
            raise Refused(404, NOT_SERVED) from None
        wanted = stat.S_ISREG if number == len(parts) - 1 else stat.S_ISDIR
        if stat.S_ISLNK(mode) or not wanted(mode):
            raise Refused(404, NOT_SERVED)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(where, flags)
    except OSError:
        raise Refused(404, NOT_SERVED) from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


async def file_page(console: Console, request: web.Request) -> web.StreamResponse:
    name, data = await asyncio.to_thread(report_file, console, request.raw_path.split("?", 1)[0])
    headers = {"X-Content-Type-Options": "nosniff"}
    if name == "report.html":
        headers["Content-Security-Policy"] = REPORT_CSP
        return web.Response(body=_redacted(console, data), content_type="text/html", charset="utf-8",
                            headers=headers)
    suffix = Path(name).suffix.lower()
    if suffix in TEXT_TYPES:
        return web.Response(body=_redacted(console, data), content_type="text/plain", charset="utf-8",
                            headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.Response(body=_redacted(console, data), content_type="application/octet-stream", headers=headers)


def _redacted(console: Console, data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return console.redact(text).encode("utf-8")


# --- an incident ---------------------------------------------------------------------------------------------------

def incident_view(console: Console, incident: str) -> dict[str, Any]:
    """The incident's runs in time order and its audit records (<output>/audit.jsonl)."""
    runs = sorted(archives.runs(console.store(), archives.Filters(incident=incident)),
                  key=lambda r: str(r.get("started_at", "")))
    return {"incident": incident, "runs": [_row(r) for r in runs], "audit": audit_records(console.output, incident)}


def audit_records(output: Path, incident: str) -> list[dict[str, Any]]:
    """The records of <output>/audit.jsonl naming `incident`, in order, each as {field: short text}."""
    path = output / "audit.jsonl"
    found = []
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if incident not in line:
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("incident") == incident:
                    found.append(_row(record))
    return found


async def incident_page(console: Console, request: web.Request) -> web.StreamResponse:
    view = await asyncio.to_thread(incident_view, console, incident_of(request.match_info["incident"]))
    if not view["runs"] and not view["audit"]:
        raise Refused(404, f"no run and no audit record names incident {view['incident']}; valid: an incident "
                      "the runs page lists")
    return console.render(request, "incident.html", **view)


async def bundle_download(console: Console, request: web.Request) -> web.StreamResponse:
    """The incident's bundle (bundle.make_bundle, signed when AIAS_BUNDLE_KEY is set), made into a temporary
    folder and streamed."""
    from ..runner.bundle import bundle_key, make_bundle
    incident = incident_of(request.match_info["incident"])
    with tempfile.TemporaryDirectory(prefix="aias-console-bundle-") as folder:
        target = Path(folder) / f"{incident}.zip"
        try:
            await asyncio.to_thread(make_bundle, console.store(), incident, target, None, bundle_key(),
                                    console.output)
        except UsageError as exc:
            raise Refused(404, str(exc)) from None
        console.audit(request, "bundle_downloaded", incident=incident)
        response = web.StreamResponse(headers={"Content-Type": "application/zip", "X-Content-Type-Options": "nosniff",
                                               "Content-Disposition": f'attachment; filename="{incident}.zip"'})
        response.content_length = target.stat().st_size
        await response.prepare(request)
        with open(target, "rb") as fh:
            while chunk := fh.read(65536):
                await response.write(chunk)
        await response.write_eof()
        return response


# --- a runbook -----------------------------------------------------------------------------------------------------

def runbook_view(console: Console, slug: str, now: datetime | None = None) -> dict[str, Any]:
    """The runbook's last RUNBOOK_RUNS runs (within RUNBOOK_LOOK_BACK_DAYS) and the numbers their findings judged,
    one series per measure (its verdicts' `measures`, and trends.py's evidence values for its three metrics)."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=RUNBOOK_LOOK_BACK_DAYS)
    runs, _, _ = newest_runs(console, RunFilter(runbook=slug, since=since), RUNBOOK_RUNS)
    archive = console.store()
    folders = {r.get("run_id"): archives.report_folder(archive, r) for r in runs}
    verdicts = archive.read_many(f"{rel}/verdict.json" for rel in folders.values() if rel)
    series: dict[str, dict[str, Any]] = {}
    for run in reversed(runs):   # oldest first
        data = verdicts.get(f"{folders.get(run.get('run_id'))}/verdict.json")
        for name, unit, value in judged_numbers(data, slug):
            entry = series.setdefault(name, {"name": name, "unit": unit, "points": []})
            entry["points"].append({"value": value, "run_id": run.get("run_id"), "status": run.get("status"),
                                    "started_at": run.get("started_at")})
    return {"slug": slug, "runs": [_row(r) for r in runs], "series": [_with_chart(s) for s in series.values()],
            "known": slug in catalogue.slugs()}


def judged_numbers(data: bytes | None, slug: str) -> list[tuple[str, str, float]]:
    """(name, unit, value) of every number a verdict's findings judged: their measures, and the evidence value
    trends.py reads for this runbook's metric."""
    from ..trends import METRICS
    try:
        verdict = json.loads(data or b"")
    except ValueError:
        return []
    found: dict[str, tuple[str, str, float]] = {}
    for finding in verdict.get("findings", []) if isinstance(verdict, dict) else []:
        if not isinstance(finding, dict):
            continue
        for measure in finding.get("measures") or []:
            value = measure.get("value") if isinstance(measure, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(measure.get("name"), str):
                found.setdefault(measure["name"], (measure["name"], str(measure.get("unit") or ""), float(value)))
        evidence = finding.get("evidence")
        for metric in METRICS:
            if metric.runbook == slug and str(finding.get("code", "")).startswith(metric.code_prefix) and \
                    isinstance(evidence, dict) and isinstance(evidence.get(metric.key), (int, float)) and \
                    not isinstance(evidence.get(metric.key), bool):
                found.setdefault(metric.name, (metric.label, "", float(evidence[metric.key])))
    return list(found.values())


CHART_W, CHART_H = 240, 48


def _with_chart(series: dict[str, Any]) -> dict[str, Any]:
    """A series with its summary (latest, lowest, highest) and a sparkline's SVG points."""
    values = [p["value"] for p in series["points"]]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = CHART_W / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{CHART_H - 4 - (v - low) / span * (CHART_H - 8):.1f}"
                      for i, v in enumerate(values))
    return series | {"latest": values[-1], "low": low, "high": high, "svg_points": points, "width": CHART_W,
                     "height": CHART_H}


async def runbook_page(console: Console, request: web.Request) -> web.StreamResponse:
    view = await asyncio.to_thread(runbook_view, console, slug_of(request.match_info["slug"]))
    if not view["runs"] and not view["known"]:
        raise Refused(404, f"no runbook {view['slug']} and no run of it in the archive; valid: "
                      f"{', '.join(catalogue.slugs()) or 'none'}")
    return console.render(request, "runbook.html", **view)
