"""Workflow faults for scenarios (workers-down, external-api-outage, external-api-slow, plan-limit-reached) and
their undoing.

Each writes its recent past as history, as the seed writes history, so workflows-not-executing sees it the moment
`up` returns: executions that have waited for a stopped worker, an integration's failures since it went down, a
tenant's runs today up to its plan's daily limit. History rows carry ids starting with MARKER, so the end of the
scenario deletes exactly them (and the live worker's failures during it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..emulators.hosted.integrations import INTEGRATIONS
from ..emulators.hosted.state import services_state
from ..platform.worker import CALL_TIMEOUT_S
from .base import Context

MARKER = "f0f0f0f0"             # history rows' ids start with it
DOWN_INTEGRATION = "hubspot"
WORKER_SILENT_MINUTES = 20      # workers-down: the worker stopped this long ago
STUCK = 40                      # ... and this many executions have queued since, one every 30 s
OUTAGE_FAILURES = 60            # external-api-outage: failures in the last 5 minutes
SLOW_INTEGRATION = "openai"
SLOW_MINUTES = 20               # external-api-slow: it has answered slower than the worker waits for this long ...
SLOW_TIMEOUTS = 600             # ... and this many executions calling it timed out meanwhile: 30 a minute, what the
                                # worker runs in all, so they outnumber the calls to it that succeeded in the minutes
                                # before the scenario began (a sandbox up for a while: about 10 a minute)

_ID = f"overlay(gen_random_uuid()::text placing '{MARKER}' from 1 for 8)::uuid"
_ACTIVE = """
WITH wf AS (SELECT id, tenant_id, user_id, row_number() OVER (ORDER BY id) AS n FROM public.workflows
            WHERE status = 'active' {only})
"""
STUCK_SQL = _ACTIVE.format(only="") + f"""
INSERT INTO public.workflow_executions (id, workflow_id, tenant_id, user_id, status, created_at)
SELECT {_ID}, wf.id, wf.tenant_id, wf.user_id, 'pending', now() - make_interval(secs => 30 * g)
FROM generate_series(1, %(n)s) AS g
JOIN wf ON wf.n = 1 + (g * 37) %% (SELECT count(*) FROM wf)
"""
OUTAGE_SQL = _ACTIVE.format(only="AND integration = %(integration)s") + f"""
INSERT INTO public.workflow_executions (id, workflow_id, tenant_id, user_id, status, created_at, started_at,
                                        finished_at, duration_ms, error)
SELECT {_ID}, wf.id, wf.tenant_id, wf.user_id, 'failed', at, at + interval '80 ms', at + interval '260 ms', 180,
       'HTTP 503 from upstream connector "' || %(integration)s || '"'
FROM generate_series(1, %(n)s) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => 290.0 * g / %(n)s) AS at) AS t
JOIN wf ON wf.n = 1 + (g * 37) %% (SELECT count(*) FROM wf)
"""
SLOW_SQL = _ACTIVE.format(only="AND integration = %(integration)s") + f"""
INSERT INTO public.workflow_executions (id, workflow_id, tenant_id, user_id, status, created_at, started_at,
                                        finished_at, duration_ms, error)
SELECT {_ID}, wf.id, wf.tenant_id, wf.user_id, 'timed_out', at, at + interval '80 ms',
       at + interval '80 ms' + make_interval(secs => %(wait_s)s), 1000 * %(wait_s)s,
       'Execution exceeded timeout of ' || %(wait)s || 's calling connector "' || %(integration)s || '"'
FROM generate_series(1, %(n)s) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => %(span_s)s * g / %(n)s) AS at) AS t
JOIN wf ON wf.n = 1 + (g * 37) %% (SELECT count(*) FROM wf)
"""
# The tenant that reaches its limit: on the free plan (or any limited plan) with an active workflow, by slug.
PLAN_TENANT_SQL = """
WITH plan AS (
  SELECT DISTINCT ON (tenant_id) tenant_id, tier FROM public.subscription_tiers
  WHERE tenant_id IS NOT NULL AND status IN ('active', 'trialing')
  ORDER BY tenant_id, CASE tier WHEN 'enterprise' THEN 3 WHEN 'pro' THEN 2 ELSE 1 END DESC
)
SELECT t.id, t.name, t.slug, l.max_executions_per_day
FROM public.tenants t
LEFT JOIN plan p ON p.tenant_id = t.id
JOIN public.plan_limits l ON l.tier = coalesce(p.tier, 'free')
WHERE l.max_executions_per_day IS NOT NULL
  AND EXISTS (SELECT 1 FROM public.workflows w WHERE w.tenant_id = t.id AND w.status = 'active')
ORDER BY l.max_executions_per_day, t.slug
LIMIT 1
"""
PLAN_FILL_SQL = f"""
WITH wf AS (SELECT id, user_id, row_number() OVER (ORDER BY id) AS n FROM public.workflows
            WHERE tenant_id = %(tenant)s AND status = 'active'),
     today AS (SELECT date_trunc('day', now(), 'UTC') AS t0)
INSERT INTO public.workflow_executions (id, workflow_id, tenant_id, user_id, status, created_at, started_at,
                                        finished_at, duration_ms)
SELECT {_ID}, wf.id, %(tenant)s, wf.user_id, 'succeeded', at, at + interval '100 ms', at + interval '900 ms', 800
FROM generate_series(1, greatest(0, %(limit)s - (SELECT count(*) FROM public.workflow_executions, today
                                                   WHERE tenant_id = %(tenant)s AND created_at >= today.t0))) AS g
CROSS JOIN today
CROSS JOIN LATERAL (SELECT today.t0 + (now() - interval '1 minute' - today.t0) * g / (%(limit)s + 1.0) AS at) AS t
JOIN wf ON wf.n = 1 + g %% (SELECT count(*) FROM wf)
"""


def workers_down(folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """The worker (stopped by WorkflowFault) died WORKER_SILENT_MINUTES ago; executions queued since wait for it."""
    with conn.transaction():
        conn.execute("UPDATE public.workflow_executions SET status = 'pending', started_at = NULL "
                     "WHERE status = 'running'")
        conn.execute(STUCK_SQL, {"n": STUCK})
        conn.execute("UPDATE public.worker_heartbeats SET last_seen = now() - make_interval(mins => %(m)s), "
                     "last_started_at = now() - make_interval(mins => %(m)s)", {"m": WORKER_SILENT_MINUTES})
    return {"pending": STUCK}


def external_api_outage(folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """DOWN_INTEGRATION answers 503 (live, for the worker's calls) and has failed for the last 5 minutes."""
    with services_state(folder) as state:
        state.setdefault("integrations", {})[DOWN_INTEGRATION] = "down"
    conn.execute(OUTAGE_SQL, {"integration": DOWN_INTEGRATION, "n": OUTAGE_FAILURES})
    return {"integration": DOWN_INTEGRATION}


def external_api_slow(folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """SLOW_INTEGRATION answers 200, after longer than the worker waits (live), and every execution calling it in
    the last SLOW_MINUTES timed out."""
    with services_state(folder) as state:
        state.setdefault("integrations", {})[SLOW_INTEGRATION] = "slow"
    conn.execute(SLOW_SQL, {"integration": SLOW_INTEGRATION, "n": SLOW_TIMEOUTS, "span_s": 60.0 * SLOW_MINUTES,
                            "wait_s": CALL_TIMEOUT_S, "wait": f"{CALL_TIMEOUT_S:g}"})
    return {"integration": SLOW_INTEGRATION}


def plan_limit_reached(folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """One tenant's executions today reach its plan's max_executions_per_day."""
    tenant, name, slug, limit = conn.execute(PLAN_TENANT_SQL).fetchone()
    conn.execute(PLAN_FILL_SQL, {"tenant": tenant, "limit": limit})
    return {"tenant": name, "slug": slug, "limit": limit}


FAULTS: dict[str, Callable[[Path, psycopg.Connection], dict[str, Any]]] = {
    "workers-down": workers_down, "external-api-outage": external_api_outage,
    "external-api-slow": external_api_slow, "plan-limit-reached": plan_limit_reached}


def make_fault(kind: str, folder: Path, conn: psycopg.Connection) -> dict[str, Any]:
    return FAULTS[kind](folder, conn)


def reset(folder: Path, conn: psycopg.Connection, since: float) -> None:
    """Undo a workflow scenario: its history and the live failures during it deleted, every integration up."""
    with conn.transaction():
        conn.execute(f"DELETE FROM public.workflow_executions WHERE id >= '{MARKER}-0000-0000-0000-000000000000' "
                     f"AND id <= '{MARKER}-ffff-ffff-ffff-ffffffffffff'")
        conn.execute("DELETE FROM public.workflow_executions WHERE created_at >= to_timestamp(%s) "
                     "AND status IN ('failed', 'timed_out')", [since or time.time()])
    with services_state(folder) as state:
        state["integrations"] = {name: "up" for name in INTEGRATIONS}


@dataclass(frozen=True)
class WorkflowFault:
    """A workflow fault (kind in FAULTS; workers-down also stops the worker); reset deletes its history and the
    live failures during it, every integration up again (control restarts the worker)."""

    kind: str

    def make(self, ctx: Context) -> None:
        if self.kind == "workers-down":
            ctx.stop("worker")
        with ctx.admin() as conn:
            make_fault(self.kind, ctx.folder, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(ctx.folder, conn, ctx.since)
