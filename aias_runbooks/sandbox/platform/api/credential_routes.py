"""The sandbox API's credentials besides sessions: API keys, the service-role (admin) token, and revoking them.

`identify` (a middleware) names the credential a request presents, so the request log (api_requests.credential,
api_key_id) shows who used what from where: the admin bearer token is the platform's service-role credential; a
bearer `aias_live_...` is a tenant's API key, found by its prefix and SHA-256 hash (never stored in clear), refused
with 401 once revoked (the attempt is still logged with its key id) and otherwise stamped `last_used_at`.

POST /api/admin/credentials/revoke (admin token): {"users": [ids], "api_keys": [ids]} signs the users out everywhere
(their auth.sessions and auth.refresh_tokens deleted) and sets the keys' revoked_at, all in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from aiohttp import web

KEY_PREFIX = "aias_live_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8        # what api_keys.prefix holds: aias_live_ and 8 hex digits


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_admin(request: web.Request) -> bool:
    """The request carries the admin (service-role) bearer token."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    admin = request.app.get("admin_token") or ""
    return bool(admin) and hmac.compare_digest(given.encode(), admin.encode())


@web.middleware
async def identify(request: web.Request, handler) -> web.StreamResponse:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if is_admin(request):
        request["credential"] = "service_role"
    elif given.startswith(KEY_PREFIX):
        request["credential"] = "api_key"
        async with request.app["pool"].connection() as conn:
            row = await (await conn.execute(
                "SELECT id, revoked_at FROM public.api_keys WHERE prefix = %s AND key_hash = %s",
                (given[:PREFIX_LENGTH], key_hash(given)))).fetchone()
            if row is None:
                request["error"] = "unauthorized: invalid API key"
                return web.json_response({"error": "Invalid API key"}, status=401)
            request["api_key_id"] = row[0]
            if row[1] is not None:
                request["error"] = "unauthorized: API key revoked"
                return web.json_response({"error": "API key revoked"}, status=401)
            await conn.execute("UPDATE public.api_keys SET last_used_at = now() WHERE id = %s", (row[0],))
    return await handler(request)


def _ids(values) -> list[str]:
    """Each value as a uuid's text; ValueError on anything else."""
    if not isinstance(values, list):
        raise ValueError("a list of ids was expected")
    return [str(uuid.UUID(str(v))) for v in values]


async def revoke(request: web.Request) -> web.Response:
    """Sign users out everywhere and revoke API keys, in one transaction; says what each target lost."""
    if not is_admin(request):
        return web.json_response({"ok": False, "error": "admin token required"}, status=401)
    try:
        body = await request.json()
        users, keys = _ids(body.get("users", [])), _ids(body.get("api_keys", []))
    except (ValueError, AttributeError) as exc:
        return web.json_response({"ok": False, "error": f"invalid request: {exc}"}, status=400)
    async with request.app["pool"].connection() as conn, conn.transaction():
        tokens = await (await conn.execute("DELETE FROM auth.refresh_tokens WHERE user_id = ANY(%s::text[]) "
                                           "RETURNING user_id", (users,))).fetchall()
        sessions = await (await conn.execute("DELETE FROM auth.sessions WHERE user_id = ANY(%s::uuid[]) "
                                             "RETURNING user_id::text", (users,))).fetchall()
        revoked = await (await conn.execute("UPDATE public.api_keys SET revoked_at = now() WHERE id = ANY(%s::uuid[]) "
                                            "AND revoked_at IS NULL RETURNING id::text", (keys,))).fetchall()
        known = await (await conn.execute("SELECT id::text, revoked_at FROM public.api_keys "
                                          "WHERE id = ANY(%s::uuid[])", (keys,))).fetchall()
    newly = {r[0] for r in revoked}
    return web.json_response({
        "ok": True,
        "users": {u: {"sessions": sum(r[0] == u for r in sessions), "refresh_tokens": sum(r[0] == u for r in tokens)}
                  for u in users},
        "api_keys": {k: ("revoked" if k in newly else "already revoked" if k in {r[0] for r in known}
                         else "not found") for k in keys}})


def configure(app: web.Application) -> None:
    app.router.add_post("/api/admin/credentials/revoke", revoke)
