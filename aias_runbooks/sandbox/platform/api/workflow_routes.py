"""The sandbox API's workflow runs: POST /api/workflows/run (a signed-in member of the workflow's tenant), and
POST /api/admin/executions/retry (admin token).

A run is queued as a pending execution for the worker, unless the tenant's plan reached its executions today
(429). Retry re-queues failed or timed-out executions: each gets one new pending execution (attempt + 1,
retry_of = it), which the worker runs. An execution already retried, or no longer failed or timed out, is
skipped: the unique index on retry_of makes a second retry of the same execution impossible, also when two
requests race.
"""

from __future__ import annotations

import hmac
import uuid

from aiohttp import web

from .auth_routes import session_user, unauthorized

MAX_IDS = 500
# The workflow, if active and in one of the user's tenants; the tenant's daily limit (its best active plan's, else
# the free plan's; NULL = unlimited) and its executions today.
RUN_SQL = """
SELECT w.tenant_id, l.max_executions_per_day,
       (SELECT count(*) FROM workflow_executions e
        WHERE e.tenant_id = w.tenant_id AND e.created_at >= date_trunc('day', now(), 'UTC'))
FROM workflows w
JOIN tenant_members m ON m.tenant_id = w.tenant_id AND m.user_id = %(user)s
LEFT JOIN LATERAL (
  SELECT tier FROM subscription_tiers s WHERE s.tenant_id = w.tenant_id AND s.status IN ('active', 'trialing')
  ORDER BY CASE tier WHEN 'enterprise' THEN 3 WHEN 'pro' THEN 2 ELSE 1 END DESC LIMIT 1
) p ON true
JOIN plan_limits l ON l.tier = coalesce(p.tier, 'free')
WHERE w.id = %(workflow)s AND w.status = 'active'
"""
RETRY_SQL = """
INSERT INTO workflow_executions (workflow_id, tenant_id, user_id, status, attempt, retry_of)
SELECT e.workflow_id, e.tenant_id, e.user_id, 'pending', e.attempt + 1, e.id
FROM workflow_executions e
WHERE e.id = ANY(%s) AND e.status IN ('failed', 'timed_out')
ON CONFLICT (retry_of) WHERE retry_of IS NOT NULL DO NOTHING
RETURNING retry_of::text, id::text
"""


def configure(app: web.Application) -> None:
    app.router.add_post("/api/workflows/run", run_workflow)
    app.router.add_post("/api/admin/executions/retry", retry_executions)


async def run_workflow(request: web.Request) -> web.Response:
    """{"workflow_id": id} -> 202 with the queued execution; 404 for a workflow not the user's, 429 at the plan's
    daily limit."""
    body = await request.json()
    async with request.app["pool"].connection() as conn:
        user = await session_user(request, conn)
        if user is None:
            return unauthorized(request)
        try:
            workflow = str(uuid.UUID(str(body["workflow_id"])))
        except ValueError:
            workflow = None
        row = workflow and await (await conn.execute(RUN_SQL, {"workflow": workflow, "user": user})).fetchone()
        if not row:
            request["error"] = "not_found: no such workflow in the user's tenants"
            return web.json_response({"error": "Workflow not found"}, status=404)
        tenant, cap, used = row
        if cap is not None and used >= cap:
            request["error"] = f"plan_limit: tenant {tenant} ran {used} of {cap} executions today"
            return web.json_response({"error": "Daily execution limit of your plan reached"}, status=429)
        execution = (await (await conn.execute(
            "INSERT INTO workflow_executions (workflow_id, tenant_id, user_id) VALUES (%s, %s, %s) RETURNING id",
            (workflow, tenant, user))).fetchone())[0]
    return web.json_response({"execution": {"id": str(execution), "status": "pending"}}, status=202)


async def retry_executions(request: web.Request) -> web.Response:
    """{"ids": [execution ids]} -> {"retried": {id: new execution id}, "skipped": [ids not retried]}."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not request.app["admin_token"] or not hmac.compare_digest(given, request.app["admin_token"]):
        return web.json_response({"ok": False, "error": "admin token required"}, status=401)
    try:
        ids = [str(uuid.UUID(str(i))) for i in (await request.json()).get("ids") or []]
    except (ValueError, AttributeError, TypeError):
        return web.json_response({"ok": False, "error": "ids must be a list of execution ids"}, status=400)
    if len(ids) > MAX_IDS:
        return web.json_response({"ok": False, "error": f"at most {MAX_IDS} ids per request"}, status=400)
    async with request.app["pool"].connection() as conn:
        rows = await (await conn.execute(RETRY_SQL, (ids,))).fetchall()
    retried = dict(rows)
    return web.json_response({"ok": True, "retried": retried, "skipped": [i for i in ids if i not in retried]})
