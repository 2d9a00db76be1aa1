"""The minutes before `up` returned for the monitoring scenarios: a 1-minute error blip, 8 minutes of slow responses,
8 minutes of slow database checks. Written into api_requests as the seed writes history (request_id `monitor-...`,
as bad_release.py does), so the sustained 5-minute rules can be judged the moment the scenario is up; the everyday
traffic goes on around them. Leaving the scenario deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .base import Context

KINDS = ("error-blip", "slow-responses", "slow-database")
MINUTES = 8            # slow-responses, slow-database: this many minutes up to now
BUG = ("TypeError: Cannot read properties of null (reading 'settings') at loadDashboard "
       "(app/api/workflows/route.ts:17:9)")

# One minute, two minutes ago: 40 requests, 12 of them 500 (about 14 % with that minute's everyday traffic).
BLIP_SQL = """
INSERT INTO public.api_requests (created_at, method, path, status, duration_ms, ip, request_id, error)
SELECT date_trunc('minute', now()) - interval '2 minutes' + g * interval '1.5 seconds', 'GET', '/api/workflows',
       CASE WHEN g %% 10 < 3 THEN 500 ELSE 200 END, 40 + (g %% 7) * 9, '10.0.0.1', 'monitor-blip-' || g,
       CASE WHEN g %% 10 < 3 THEN %(bug)s END
FROM generate_series(0, 39) AS g
"""
# The last MINUTES minutes, 40 requests a minute (no health check among them), every 4th taking 1.2-1.5 s.
SLOW_SQL = """
INSERT INTO public.api_requests (created_at, method, path, status, duration_ms, ip, request_id)
SELECT now() - make_interval(mins => %(minutes)s) + g * interval '1.5 seconds', 'GET',
       (ARRAY['/api/workflows', '/api/profile', '/api/workflows/run', '/api/auth/login'])[1 + g %% 4],
       200, CASE WHEN g %% 4 = 0 THEN 1200 + (g %% 6) * 60 ELSE 60 + (g %% 7) * 9 END, '10.0.0.1', 'monitor-slow-' || g
FROM generate_series(0, %(minutes)s * 40 - 1) AS g
"""
# The last MINUTES minutes, the load balancer's health checks every 3 s, each one's SELECT 1 taking 600-900 ms.
SLOW_DB_SQL = """
INSERT INTO public.api_requests (created_at, method, path, status, duration_ms, ip, request_id)
SELECT now() - make_interval(mins => %(minutes)s) + g * interval '3 seconds', 'GET', '/api/healthz', 200,
       600 + (g %% 7) * 50, '10.0.0.2', 'monitor-db-' || g
FROM generate_series(0, %(minutes)s * 20 - 1) AS g
"""


def make(kind: str, conn: psycopg.Connection) -> None:
    """Write the kind's minutes as history, ending now."""
    sql = {"error-blip": BLIP_SQL, "slow-responses": SLOW_SQL, "slow-database": SLOW_DB_SQL}[kind]
    conn.execute(sql, {"bug": BUG, "minutes": MINUTES})


def reset(conn: psycopg.Connection, since: float) -> None:
    """Delete the history written when the scenario started at `since` (epoch s), found from its first minute on
    (created_at, indexed)."""
    conn.execute("DELETE FROM public.api_requests WHERE request_id LIKE 'monitor-%%' "
                 "AND created_at >= to_timestamp(%s)", (since - (MINUTES + 2) * 60,))


@dataclass(frozen=True)
class MetricHistory:
    """Minutes of requests (kind in KINDS) written as history ending now; reset deletes them."""

    kind: str

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make(self.kind, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(conn, ctx.since)
