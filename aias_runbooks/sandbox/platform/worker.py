"""The sandbox's workflow worker: it schedules executions of the active workflows and runs them.

One process, one database session (the application role, application_name `aias-worker`), a light loop:
- the scheduler enqueues a pending execution of a random active workflow every ENQUEUE_EVERY_S, leaving each
  tenant's plan room (below PLAN_HEADROOM of its max_executions_per_day today), as the platform refuses runs past it;
- the executor claims the oldest pending execution (FOR UPDATE SKIP LOCKED), marks it running, calls the
  workflow's integration (the hosted-services emulator's /integrations/{name}) with a CALL_TIMEOUT_S timeout and
  records succeeded, failed (the API's answer) or timed_out with its duration;
- its heartbeat (worker_heartbeats: last seen, whether it started an execution since the last one) is
  upserted every HEARTBEAT_EVERY_S.
A database error is one log line, then the session backs off and reconnects (sessions.Session); it never dies
of one and never busy-loops. Run as `python -m aias_runbooks.sandbox.platform.worker READY_FILE`.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import httpx
import psycopg

from . import sessions
from .sessions import Session

APP = "aias-worker"
WORKER = "worker-1"
ENQUEUE_EVERY_S = 2.0
CALL_TIMEOUT_S = 2.0
IDLE_S = 0.5
HEARTBEAT_EVERY_S = 5.0
REFRESH_EVERY_S = 60.0
PLAN_HEADROOM = 0.8

# Each tenant's plan (its best active subscription's tier) and its executions today: the room a run needs.
ROOM_SQL = """
WITH plan AS (
  SELECT DISTINCT ON (tenant_id) tenant_id, tier
  FROM subscription_tiers
  WHERE tenant_id IS NOT NULL AND status IN ('active', 'trialing')
  ORDER BY tenant_id, CASE tier WHEN 'enterprise' THEN 3 WHEN 'pro' THEN 2 ELSE 1 END DESC
), used AS (
  SELECT tenant_id, count(*) AS today FROM workflow_executions
  WHERE created_at >= date_trunc('day', now(), 'UTC') GROUP BY tenant_id
)
"""
CATALOGUE_SQL = ROOM_SQL + """
SELECT w.id, w.user_id, w.tenant_id, l.max_executions_per_day, coalesce(u.today, 0)
FROM workflows w
LEFT JOIN plan p ON p.tenant_id = w.tenant_id
JOIN plan_limits l ON l.tier = coalesce(p.tier, 'free')
LEFT JOIN used u ON u.tenant_id = w.tenant_id
WHERE w.status = 'active'
"""
CLAIM_SQL = """
WITH job AS (
  UPDATE workflow_executions SET status = 'running', started_at = now()
  WHERE id = (SELECT id FROM workflow_executions WHERE status = 'pending' ORDER BY created_at
              LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING id, workflow_id
)
SELECT job.id, w.integration FROM job JOIN workflows w ON w.id = job.workflow_id
"""
HEARTBEAT_SQL = """
INSERT INTO worker_heartbeats (worker, last_seen, last_started_at)
VALUES (%(worker)s, now(), CASE WHEN %(started)s THEN now() END)
ON CONFLICT (worker) DO UPDATE
SET last_seen = now(), last_started_at = coalesce(excluded.last_started_at, worker_heartbeats.last_started_at)
"""


class Catalogue:
    """What can run, and each tenant's room today: rows of `sql` are (what..., tenant, daily limit, used today),
    and pick() returns a random (what..., tenant) whose tenant stays below PLAN_HEADROOM of its limit."""

    def __init__(self, sql: str = CATALOGUE_SQL) -> None:
        self.sql = sql
        self.items: list[tuple] = []
        self.limit: dict = {}
        self.used: dict = {}

    def load(self, conn: psycopg.Connection) -> None:
        rows = conn.execute(self.sql).fetchall()
        self.items = [row[:-2] for row in rows]
        self.limit = {row[-3]: row[-2] for row in rows}
        self.used = {row[-3]: row[-1] for row in rows}

    def pick(self) -> tuple | None:
        room = [i for i in self.items if self.limit.get(i[-1]) is None
                or self.used.get(i[-1], 0) + 1 < PLAN_HEADROOM * self.limit[i[-1]]]
        if not room:
            return None
        chosen = random.choice(room)
        self.used[chosen[-1]] = self.used.get(chosen[-1], 0) + 1
        return chosen


def _enqueue(conn: psycopg.Connection, workflow: tuple) -> None:
    conn.execute("INSERT INTO workflow_executions (workflow_id, user_id, tenant_id) VALUES (%s, %s, %s)", workflow)


def _claim(conn: psycopg.Connection):
    return conn.execute(CLAIM_SQL).fetchone()


def _beat(conn: psycopg.Connection, started: bool) -> None:
    conn.execute(HEARTBEAT_SQL, {"worker": WORKER, "started": started})


def _finish(conn: psycopg.Connection, execution, outcome: tuple[str, int, str | None]) -> None:
    status, duration_ms, error = outcome
    conn.execute("UPDATE workflow_executions SET status = %s, finished_at = now(), duration_ms = %s, error = %s "
                 "WHERE id = %s AND status = 'running'", (status, duration_ms, error, execution))


def call(http: httpx.Client, base: str, integration: str) -> tuple[str, int, str | None]:
    """(status, duration in ms, error) of one call to the workflow's integration."""
    start = time.perf_counter()
    try:
        response = http.post(f"{base}/{integration}", json={"source": APP})
    except httpx.TimeoutException:
        return ("timed_out", int((time.perf_counter() - start) * 1000),
                f"Execution exceeded timeout of {CALL_TIMEOUT_S:g}s calling connector \"{integration}\"")
    except httpx.HTTPError as exc:
        return ("failed", int((time.perf_counter() - start) * 1000),
                f"Connector \"{integration}\" unreachable: {type(exc).__name__}")
    took = int((time.perf_counter() - start) * 1000)
    if response.status_code >= 400:
        return "failed", took, f"HTTP {response.status_code} from upstream connector \"{integration}\""
    return "succeeded", took, None


def main() -> None:
    ready = Path(sys.argv[1])
    sessions.LOG_NAME = "worker"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    base = os.environ["AIAS_SANDBOX_SERVICES_URL"].rstrip("/") + "/integrations"
    session = Session("worker", APP, ["SET statement_timeout = '2s'"], autocommit=True)
    catalogue = Catalogue()
    refreshed = next_enqueue = next_beat = 0.0
    started = False
    with httpx.Client(timeout=CALL_TIMEOUT_S, headers={"User-Agent": APP}) as http:
        while True:
            now = time.monotonic()
            if now - refreshed >= REFRESH_EVERY_S:
                session.run(catalogue.load)
                refreshed = now
            if now >= next_enqueue:
                workflow = catalogue.pick()
                if workflow is not None:
                    session.run(_enqueue, workflow)
                next_enqueue = now + ENQUEUE_EVERY_S
            job = session.run(_claim)
            started |= job is not None
            if now >= next_beat:   # not on every claim: one row updated every few seconds stays far from vacuum lag
                session.run(_beat, started)
                next_beat, started = now + HEARTBEAT_EVERY_S, False
                if not ready.exists():
                    ready.touch()
            if job is None:
                time.sleep(IDLE_S)
                continue
            session.run(_finish, job[0], call(http, base, job[1]))


if __name__ == "__main__":
    main()
