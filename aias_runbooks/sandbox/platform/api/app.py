"""The sandbox AIAS API: /api/healthz (which checks its database), /api/workflows, billing (billing_routes.py),
accounts (auth_routes.py: signup, login, profile), workflow runs and retries (workflow_routes.py), every request
logged to api_requests (with the signed-in user, if any,
and the API key or service-role token it presented: credential_routes.py).

Like any real API it ships a few bugs that only rare inputs reach, each an unhandled exception (500, logged to
error_logs): `?limit=all` on /api/workflows, a form-encoded body on /api/auth/login, `workflowId` instead of
`workflow_id` on /api/workflows/run. The sandbox's visitors (visitors.py) send each now and then.

Run as `python -m aias_runbooks.sandbox.platform.api.app --port N --state-dir D`; the database URL (of the application
role aias_app, not a superuser) comes from the AIAS_SANDBOX_APP_DATABASE_URL environment variable, never the
command line. The active scenario is read from D/scenario.json, so `sandbox up --scenario` changes
behaviour without a restart.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from aias_runbooks.sandbox import processes
from aias_runbooks.sandbox.platform.api import auth_routes, billing_routes, credential_routes, workflow_routes

log = logging.getLogger("aias-sandbox-api")
SLOW_EVERY = 4          # api-slow: every 4th request of each client waits SLOW_DELAY_S (P95 crosses 1 s)
SLOW_DELAY_S = 1.2
DB_CHECK_TIMEOUT_S = 2.0


class JsonFile:
    """A state file of the sandbox folder (scenario.json, services.json), re-read only when it changes."""

    def __init__(self, path: Path) -> None:
        self.path, self._mtime, self._data = path, None, {}

    def get(self) -> dict:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            self._data, self._mtime = json.loads(self.path.read_text() or "{}"), mtime
        return self._data


@web.middleware
async def scenario_and_request_log(request: web.Request, handler) -> web.StreamResponse:
    app = request.app
    counts, client = app["counts"], auth_routes.client_key(request)
    if len(counts) > 10_000:   # a counter per client address must not grow without bound
        counts.clear()
    counts["requests"] += 1
    counts[client] += 1
    start = time.perf_counter()
    if app["scenario"].get().get("api") == "slow" and counts[client] % SLOW_EVERY == 0:
        await asyncio.sleep(SLOW_DELAY_S)
    status, error = 500, None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("unhandled error on %s: %s", request.path, error)
        return web.json_response({"ok": False, "error": "internal error"}, status=500)
    finally:
        unhandled, error = error is not None, error or request.get("error")
        duration_ms = (time.perf_counter() - start) * 1000
        task = asyncio.create_task(_log_request(app, request, status, duration_ms, error, unhandled))
        app["pending"].add(task)
        task.add_done_callback(app["pending"].discard)


async def _log_request(app: web.Application, request: web.Request, status: int, duration_ms: float,
                       error: str | None, unhandled: bool) -> None:
    """api_requests for every request; error_logs too for an unhandled exception, as the platform's logger does."""
    try:
        async with app["pool"].connection(timeout=2) as conn:
            await conn.execute(
                "INSERT INTO api_requests (method, path, status, duration_ms, user_id, ip, request_id, error, "
                "credential, api_key_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (request.method, request.path, status, duration_ms, request.get("user_id"),
                 auth_routes.client_ip(request), request["request_id"], error, request.get("credential"),
                 request.get("api_key_id")))
            if unhandled:
                await conn.execute("INSERT INTO error_logs (level, source, message, path, request_id) "
                                   "VALUES ('error', 'api', %s, %s, %s)",
                                   (f"Unhandled exception: {error}", request.path, request["request_id"]))
    except Exception as exc:  # the API keeps serving when its request log cannot be written
        log.warning("could not log request: %s", exc)


@web.middleware
async def request_id(request: web.Request, handler) -> web.StreamResponse:
    request["request_id"] = request.headers.get("x-request-id") or uuid.uuid4().hex
    response = await handler(request)
    response.headers["x-request-id"] = request["request_id"]
    return response


async def healthz(request: web.Request) -> web.Response:
    """{"ok": true} when the API can reach its database, else 503 with the reason."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        if request.app["scenario"].get().get("api") == "db-down":   # its database does not answer: wait it out
            await asyncio.wait_for(_never_answers(), DB_CHECK_TIMEOUT_S)
        await asyncio.wait_for(_select_one(request.app["pool"]), DB_CHECK_TIMEOUT_S)
    except Exception as exc:
        return web.json_response({"ok": False, "db": f"unreachable: {type(exc).__name__}", "time": now},
                                 status=503)
    return web.json_response({"ok": True, "db": "ok", "service": "aias-api (sandbox)", "time": now})


async def workflows(request: web.Request) -> web.Response:
    """The dashboard's workflow list. Under a faulty deployment (services.json `faulty`) every third request hits
    its bug, as a code path that only some tenants' data reaches would."""
    live = request.app["services"].get()
    if live.get("production") in live.get("faulty", []) and request.app["counts"]["requests"] % 3 == 0:
        raise TypeError("Cannot read properties of undefined (reading 'tier') at listWorkflows "
                        "(app/api/workflows/route.ts:42:18)")
    limit = min(int(request.query.get("limit", 20)), 100)
    async with request.app["pool"].connection() as conn:
        rows = await (await conn.execute("SELECT id::text, name FROM workflows ORDER BY created_at DESC "
                                         "LIMIT %s", (limit,))).fetchall()
    return web.json_response({"workflows": [{"id": i, "name": n} for i, n in rows]})


async def _never_answers() -> None:
    """Scenario api-db-down: a database check that hangs, as against a database host that dropped off the
    network, until the health check's timeout gives up on it."""
    await asyncio.Event().wait()


async def _select_one(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


async def _open_pool(app: web.Application):
    app["pool"] = AsyncConnectionPool(os.environ["AIAS_SANDBOX_APP_DATABASE_URL"], min_size=1, max_size=4,
                                      kwargs={"application_name": "aias-api"}, open=False)
    await app["pool"].open(wait=False)
    yield
    await asyncio.gather(*app["pending"], return_exceptions=True)
    await app["pool"].close()


def make_app(state_dir: Path) -> web.Application:
    app = web.Application(middlewares=[request_id, scenario_and_request_log, credential_routes.identify])
    app.update(scenario=JsonFile(state_dir / "scenario.json"), services=JsonFile(state_dir / "services.json"),
               counts=collections.Counter(), pending=set())   # requests in all and per client
    app.cleanup_ctx.append(_open_pool)
    app.router.add_get("/api/healthz", healthz)
    app.router.add_get("/api/workflows", workflows)
    billing_routes.configure(app)
    auth_routes.configure(app)          # after billing: shares its admin token
    workflow_routes.configure(app)
    credential_routes.configure(app)
    return app


def main() -> None:
    processes.serve(make_app, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
