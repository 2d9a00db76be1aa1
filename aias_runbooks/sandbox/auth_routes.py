"""The sandbox API's signup: POST /api/auth/signup, and POST /api/admin/rate-limits/clear (admin token).

Signup counts each client (`ip:<first X-Forwarded-For hop>`, as Vercel forwards it) in a per-minute window of
rate_limits; past SIGNUP_LIMIT a minute the key is blocked for BLOCK_MINUTES and every attempt meanwhile gets 429.
It asks Supabase Auth whether it is up (503 when not), creates the user (auth.users, profile, free plan) and sends
the welcome email through Resend; an email Resend refuses is logged to error_logs (source 'email') and the
signup still succeeds: the account exists, the user just gets no email.
"""

from __future__ import annotations

import hmac
import os
import re

import httpx
from aiohttp import web

SIGNUP_LIMIT = 5          # signups per client per minute
BLOCK_MINUTES = 15
SENDER = "AIAS <welcome@aiautomatedsystems.ca>"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def configure(app: web.Application) -> None:
    services = os.environ.get("AIAS_SANDBOX_SERVICES_URL", "")
    app.update(supabase=services + "/supabase", resend=services + "/resend",
               anon_key=os.environ.get("AIAS_SANDBOX_SUPABASE_ANON_KEY", ""),
               resend_key=os.environ.get("AIAS_SANDBOX_RESEND_API_KEY", ""))
    app.router.add_post("/api/auth/signup", signup)
    app.router.add_post("/api/admin/rate-limits/clear", clear_rate_limit)


def client_key(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    return f"ip:{forwarded or request.remote}"


async def signup(request: web.Request) -> web.Response:
    body = await request.json() if request.can_read_body else {}
    email = str(body.get("email") or "").strip().lower()
    key = client_key(request)
    async with request.app["pool"].connection() as conn:
        blocked = await _count(conn, key)
        if blocked:
            request["error"] = f"rate limited: {key} blocked until {blocked.isoformat(timespec='seconds')}"
            return web.json_response({"error": "Too many signup attempts, try again later",
                                      "retry_after": blocked.isoformat(timespec="seconds")}, status=429)
    if not EMAIL.fullmatch(email) or len(str(body.get("password") or "")) < 8:
        request["error"] = "validation: invalid email or password shorter than 8 characters"
        return web.json_response({"error": "Invalid email or password"}, status=400)
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            (await http.get(request.app["supabase"] + "/auth/v1/health",
                            headers={"apikey": request.app["anon_key"]})).raise_for_status()
        except httpx.HTTPError as exc:
            request["error"] = f"AuthRetryableFetchError: Supabase Auth unavailable ({type(exc).__name__})"
            return web.json_response({"error": "Authentication service unavailable"}, status=503)
        async with request.app["pool"].connection() as conn:
            user = await _create_user(conn, email)
            if user is None:
                request["error"] = "validation: User already registered"
                return web.json_response({"error": "User already registered"}, status=400)
        await _welcome(request, http, email, user)
    return web.json_response({"user": {"id": str(user), "email": email}}, status=201)


async def _count(conn, key: str):
    """Count this attempt in the key's minute window; the end of its block when it is (or becomes) blocked."""
    row = await (await conn.execute(
        "SELECT max(blocked_until) FROM rate_limits WHERE key = %s AND blocked_until > now()", (key,))).fetchone()
    if row[0]:
        return row[0]
    row = await (await conn.execute(
        "INSERT INTO rate_limits (key, window_start, count, \"limit\") VALUES (%s, date_trunc('minute', now()), 1, %s)"
        " ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1"
        " RETURNING count, \"limit\"", (key, SIGNUP_LIMIT))).fetchone()
    if row[0] <= row[1]:
        return None
    row = await (await conn.execute(
        "UPDATE rate_limits SET blocked_until = now() + make_interval(mins => %s) "
        "WHERE key = %s AND window_start = date_trunc('minute', now()) RETURNING blocked_until",
        (BLOCK_MINUTES, key))).fetchone()
    return row[0]


async def _create_user(conn, email: str):
    row = await (await conn.execute(
        "INSERT INTO auth.users (email, raw_user_meta_data) VALUES (%s, '{}') ON CONFLICT (email) DO NOTHING "
        "RETURNING id", (email,))).fetchone()
    if row is None:
        return None
    await conn.execute("INSERT INTO profiles (id, email) VALUES (%s, %s)", (row[0], email))
    await conn.execute("INSERT INTO subscription_tiers (user_id, tier, status) VALUES (%s, 'free', 'active')",
                       (row[0],))
    return row[0]


async def _welcome(request: web.Request, http: httpx.AsyncClient, email: str, user) -> None:
    try:
        sent = await http.post(request.app["resend"] + "/emails",
                               headers={"Authorization": f"Bearer {request.app['resend_key']}"},
                               json={"from": SENDER, "to": [email], "subject": "Welcome to AIAS"})
        problem = None if sent.status_code < 400 else f"Resend HTTP {sent.status_code}: {sent.json().get('message')}"
    except (httpx.HTTPError, ValueError) as exc:
        problem = f"Resend unreachable: {type(exc).__name__}"
    if problem:
        async with request.app["pool"].connection() as conn:
            await conn.execute("INSERT INTO error_logs (level, source, message, path, user_id, request_id) "
                               "VALUES ('error', 'email', %s, '/api/auth/signup', %s, %s)",
                               (f"welcome email not sent: {problem}", user, request["request_id"]))


async def clear_rate_limit(request: web.Request) -> web.Response:
    """End a key's block and restart its current window: {"key": "ip:203.0.113.7"} -> windows cleared."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not request.app["admin_token"] or not hmac.compare_digest(given, request.app["admin_token"]):
        return web.json_response({"ok": False, "error": "admin token required"}, status=401)
    key = str((await request.json()).get("key") or "")
    async with request.app["pool"].connection() as conn:
        cur = await conn.execute("UPDATE rate_limits SET blocked_until = NULL, count = 0 WHERE key = %s "
                                 "AND (blocked_until > now() OR window_start >= date_trunc('minute', now()))", (key,))
    return web.json_response({"ok": True, "key": key, "cleared": cur.rowcount})
