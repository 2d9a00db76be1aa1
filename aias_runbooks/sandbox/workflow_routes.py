"""The sandbox API's workflow admin: POST /api/admin/executions/retry (admin token).

Re-queues failed or timed-out executions: each gets one new pending execution (attempt + 1, retry_of = it), which
the worker runs. An execution already retried, or no longer failed or timed out, is skipped: the unique index on
retry_of makes a second retry of the same execution impossible, also when two requests race.
"""

from __future__ import annotations

import hmac
import uuid

from aiohttp import web

MAX_IDS = 500
RETRY_SQL = """
INSERT INTO workflow_executions (workflow_id, tenant_id, user_id, status, attempt, retry_of)
SELECT e.workflow_id, e.tenant_id, e.user_id, 'pending', e.attempt + 1, e.id
FROM workflow_executions e
WHERE e.id = ANY(%s) AND e.status IN ('failed', 'timed_out')
ON CONFLICT (retry_of) WHERE retry_of IS NOT NULL DO NOTHING
RETURNING retry_of::text, id::text
"""


def configure(app: web.Application) -> None:
    app.router.add_post("/api/admin/executions/retry", retry_executions)


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
