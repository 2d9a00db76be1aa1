"""A bad release for the error-spike scenarios: a deployment that went live twelve minutes ago with a bug on
/api/workflows, and the requests and errors of the minutes around it. Two kinds (KINDS):
- "live" (error-spike-after-deploy): the bad deployment is the live one;
- "under-newer" (error-spike-under-newer-deploy): a newer deployment went live on top of it NEWER_MINUTES_AGO and
  carries the same bug (it was built on it): the spike began at the older one, which is what a rollback must pass.

The deployments are real in the Vercel emulator (listed, live, and rolled back like any other) and so is the bug:
the sandbox API fails every third /api/workflows request while a deployment in services.json's `faulty` list is live.
The minutes before `up` returned are history, written as the seed writes history (request_id `release-...`), so
the sustained 5-minute rule can be judged the moment the scenario is up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..emulators.hosted import vercel
from ..emulators.hosted.state import services_state
from .base import Context

LIVE_MINUTES_AGO = 12
NEWER_MINUTES_AGO = 4          # "under-newer": the deployment on top of the bad one went live this long ago
KINDS = ("live", "under-newer")
HISTORY_MINUTES = 25
BUG = ("TypeError: Cannot read properties of undefined (reading 'tier') at listWorkflows "
       "(app/api/workflows/route.ts:42:18)")

HISTORY_SQL = """
WITH requests AS (
  INSERT INTO public.api_requests (created_at, method, path, status, duration_ms, ip, request_id, error)
  SELECT at, 'GET', path, CASE WHEN failing THEN 500 ELSE 200 END, 40 + (g %% 7) * 9, '10.0.0.1',
         'release-' || g, CASE WHEN failing THEN %(bug)s END
  FROM generate_series(0, %(minutes)s * 30 - 1) AS g,
       LATERAL (SELECT now() - make_interval(mins => %(minutes)s) + g * interval '2 seconds' AS at,
                       (ARRAY['/api/workflows', '/api/workflows', '/api/profile', '/api/workflows/run',
                              '/api/auth/login'])[1 + g %% 5] AS path) AS r,
       LATERAL (SELECT path = '/api/workflows' AND at >= to_timestamp(%(live_at)s) AND g %% 3 = 0 AS failing) AS f
  RETURNING created_at, path, request_id, status
)
INSERT INTO public.error_logs (created_at, level, source, message, path, request_id)
SELECT created_at, 'error', 'api', 'Unhandled exception: ' || %(bug)s, path, request_id
FROM requests WHERE status = 500
"""


def bad_deploy(kind: str, folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """A new production deployment, live since LIVE_MINUTES_AGO, faulty (with kind "under-newer", a newer one on
    top of it, live since NEWER_MINUTES_AGO, faulty too); the minutes around it as history."""
    if kind not in KINDS:
        raise ValueError(f"unknown bad release {kind!r}; valid: {', '.join(KINDS)}")
    live_at = time.time() - LIVE_MINUTES_AGO * 60
    releases = [vercel.deployment(live_at - 95, "Refactor workflow list query")]    # ready 95 s after creation
    if kind == "under-newer":
        releases.append(vercel.deployment(time.time() - NEWER_MINUTES_AGO * 60 - 95, "Copy edits on the dashboard"))
    with services_state(folder) as state:
        state["deployments"].extend(releases)
        state["production"], state["faulty"] = releases[-1]["uid"], [r["uid"] for r in releases]
    conn.execute(HISTORY_SQL, {"bug": BUG, "minutes": HISTORY_MINUTES, "live_at": live_at})
    return {"deployment": releases[0]["uid"], "live": releases[-1]["uid"]}


def reset(folder: Path, conn: psycopg.Connection) -> None:
    """The bad release gone: its history deleted, production back on the newest sound deployment.

    The history is found from its first minute on (created_at, indexed): `request_id LIKE` alone reads every
    row of both tables, 1.5 GB at scale large, and after a statistics reset that reads as a low cache hit ratio."""
    with services_state(folder) as state:
        faulty = set(state.get("faulty", []))
        created = [d["created"] / 1000 for d in state["deployments"] if d["uid"] in faulty]
    since = min(created) - HISTORY_MINUTES * 60 if created else 0   # the history began before the release went live
    with conn.transaction():
        for table in ("error_logs", "api_requests"):
            conn.execute(f"DELETE FROM public.{table} WHERE request_id LIKE 'release-%%' "
                         "AND created_at >= to_timestamp(%s)", (since,))
    with services_state(folder) as state:
        faulty = set(state.pop("faulty", []))
        state["deployments"] = [d for d in state["deployments"] if d["uid"] not in faulty]
        state["production"] = max(state["deployments"], key=lambda d: d["created"])["uid"]


@dataclass(frozen=True)
class BadRelease:
    """A faulty deployment live (kind in KINDS) with the minutes around it as history; reset removes both."""

    kind: str

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            bad_deploy(self.kind, ctx.folder, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(ctx.folder, conn)
