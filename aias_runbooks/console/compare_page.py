"""GET /console/compare?a=RUN_ID&b=RUN_ID (viewer): two filed runs of one runbook, finding by finding (compare.py),
read from the archive's catalogue records and the runs' verdict.json.

Refusals are one line: a missing or malformed run id 400, a run not filed 404, two runbooks 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..runner import catalog
from ..runner.archive import report_folder
from .auth import requires
from .compare import NotComparable, compare

RUN_ID_HELP = "a run id as filed (YYYYmmdd-HHMMSS-xxxx, as Runs lists them)"


class RunNotFound(LookupError):
    """A run id that names no filed run, or whose verdict cannot be read; str() is one line."""


def filed_run(archive: Any, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's catalogue record and its verdict.json; RunNotFound (one line) when either is missing or the
    record's report folder is not one the archive names (report_folder: no path out of the archive)."""
    archive = catalog.at(archive)
    record = catalog.record(archive, run_id) if catalog.RUN_ID.fullmatch(run_id or "") else None
    if record is None:
        raise RunNotFound(f"no filed run {run_id!r}; valid: {RUN_ID_HELP}")
    rel = report_folder(archive, record)
    if rel is None:
        raise RunNotFound(f"run {run_id} has no readable report folder in the archive")
    try:
        verdict = json.loads(archive.read(f"{rel}/verdict.json"))
    except (OSError, ValueError):
        raise RunNotFound(f"run {run_id} has no readable verdict.json in the archive") from None
    if not isinstance(verdict, dict):
        raise RunNotFound(f"run {run_id}'s verdict.json is not a verdict")
    return record, verdict


def refuse(status: int, line: str) -> web.Response:
    """A refusal: one line of plain text."""
    return web.Response(status=status, text=line.splitlines()[0] if line else "refused", content_type="text/plain")


def routes(console: Any) -> list[web.RouteDef]:
    """The compare page's route, bound to `console` (A1's Console: archive, render)."""

    @requires("viewer")
    async def get_compare(request: web.Request) -> web.StreamResponse:
        ids = {name: request.query.get(name, "").strip() for name in ("a", "b")}
        for name, run_id in ids.items():
            if not catalog.RUN_ID.fullmatch(run_id):
                return refuse(400, f"query parameter {name} must be {RUN_ID_HELP}: /console/compare?a=RUN_ID&b=RUN_ID")
        try:
            (record_a, verdict_a), (record_b, verdict_b) = await asyncio.gather(
                asyncio.to_thread(filed_run, console.store(), ids["a"]),
                asyncio.to_thread(filed_run, console.store(), ids["b"]))
        except RunNotFound as exc:
            return refuse(404, str(exc))
        try:
            comparison = compare(verdict_a, verdict_b)
        except NotComparable as exc:
            return refuse(400, str(exc))
        return console.render(request, "compare.html", comparison=comparison, record_a=record_a, record_b=record_b)

    return [web.get("/console/compare", get_compare)]
