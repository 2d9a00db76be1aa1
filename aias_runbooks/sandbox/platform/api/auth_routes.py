"""The sandbox API's accounts: POST /api/auth/signup, POST /api/auth/login, GET /api/profile, and
POST /api/admin/rate-limits/clear (admin token).

Signup counts each client (`ip:<first X-Forwarded-For hop>`, as Vercel forwards it) in a per-minute window of
rate_limits; past SIGNUP_LIMIT a minute the key is blocked for BLOCK_MINUTES and every attempt meanwhile gets 429.
It asks Supabase Auth whether it is up (503 when not), creates the user (auth.users, profile, free plan) and sends
the welcome email through Resend; an email Resend refuses is logged to error_logs (source 'email') and the
signup still succeeds: the account exists, the user just gets no email.

Login checks the password against auth.users.encrypted_password (PBKDF2 here; Supabase uses bcrypt: the seeded
users' hashes are bcrypt-shaped placeholders, so only accounts that signed up in this sandbox can log in), opens
an auth.sessions row whose id is the bearer token (and its auth.refresh_tokens row), and writes the audit entry
(with the client's address) that Supabase Auth writes. A session's token authenticates /api/profile and
/api/workflows/run. A failed login logs the account it tried (api_requests.user_id), when there is one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import uuid

import httpx
from aiohttp import web

SIGNUP_LIMIT = 5          # signups per client per minute
BLOCK_MINUTES = 15
SENDER = "AIAS <welcome@aiautomatedsystems.ca>"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PBKDF2_ITERATIONS = 10_000   # a sandbox's cost: every login pays it, on a shared 2-core machine
SESSION_DAYS = 30
AUDIT_SQL = """
INSERT INTO auth.audit_log_entries (instance_id, id, created_at, payload, ip_address)
VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), now(),
        json_build_object('action', %s::text, 'actor_id', %s::uuid, 'actor_username', %s::text, 'actor_via_sso', false,
                          'log_type', %s::text, 'traits', json_build_object('provider', 'email')), %s)
"""

# Supabase Auth's email identity for a new user (provider_id is the user's id, as GoTrue writes it)
IDENTITY_SQL = """
INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
VALUES (%s::text, %s, json_build_object('sub', %s::text, 'email', %s::text, 'email_verified', false,
                                         'phone_verified', false)::jsonb, 'email', now(), now(), now())
"""


def configure(app: web.Application) -> None:
    services = os.environ.get("AIAS_SANDBOX_SERVICES_URL", "")
    app.update(supabase=services + "/supabase", resend=services + "/resend",
               anon_key=os.environ.get("AIAS_SANDBOX_SUPABASE_ANON_KEY", ""),
               resend_key=os.environ.get("AIAS_SANDBOX_RESEND_API_KEY", ""))
    app.router.add_post("/api/auth/signup", signup)
    app.router.add_post("/api/auth/login", login)
    app.router.add_get("/api/profile", profile)
    app.router.add_post("/api/admin/rate-limits/clear", clear_rate_limit)


def client_ip(request: web.Request) -> str:
    """The client's address: the first X-Forwarded-For hop (as Vercel forwards it) if it is an address, else the
    peer's (any client can send that header: what it holds is not trusted to be an address)."""
    try:
        return str(ipaddress.ip_address(request.headers.get("X-Forwarded-For", "").split(",")[0].strip()))
    except ValueError:
        return str(request.remote)


def client_key(request: web.Request) -> str:
    return f"ip:{client_ip(request)}"


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
        hashed = await asyncio.to_thread(hash_password, str(body["password"]))
        async with request.app["pool"].connection() as conn:
            user = await _create_user(conn, email, hashed, client_ip(request))
            if user is None:
                request["error"] = "validation: User already registered"
                return web.json_response({"error": "User already registered"}, status=400)
        request["user_id"] = user
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


async def _create_user(conn, email: str, hashed: str, ip: str):
    row = await (await conn.execute(
        "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, raw_app_meta_data, "
        "raw_user_meta_data, created_at, updated_at) VALUES ('00000000-0000-0000-0000-000000000000', "
        "gen_random_uuid(), 'authenticated', 'authenticated', %s, %s, "
        "'{\"provider\": \"email\", \"providers\": [\"email\"]}', '{}', now(), now()) "
        "ON CONFLICT (email) WHERE is_sso_user = false DO NOTHING RETURNING id", (email, hashed))).fetchone()
    if row is None:
        return None
    await conn.execute(IDENTITY_SQL, (row[0], row[0], row[0], email))
    await conn.execute(AUDIT_SQL, ("user_signedup", row[0], email, "team", ip))
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


def hash_password(password: str) -> str:
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS).hex()
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${digest}"


def password_matches(password: str, stored: str | None) -> bool:
    """False for anything but a PBKDF2 hash of this password (a seeded bcrypt placeholder never matches)."""
    parts = (stored or "").split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), parts[2].encode(), int(parts[1])).hex()
    return hmac.compare_digest(digest, parts[3])


async def login(request: web.Request) -> web.Response:
    """{"email", "password"} -> 200 with a session's access token, or 400 "Invalid login credentials"."""
    body = json.loads(await request.text())
    email, password = str(body.get("email") or "").strip().lower(), str(body.get("password") or "")
    async with request.app["pool"].connection() as conn:
        row = await (await conn.execute("SELECT id, encrypted_password FROM auth.users WHERE email = %s "
                                        "AND (banned_until IS NULL OR banned_until < now())", (email,))).fetchone()
        if row is not None:
            request["user_id"] = row[0]      # the account tried: a failed-login burst against it is visible
        if row is None or not await asyncio.to_thread(password_matches, password, row[1]):
            request["error"] = "invalid_grant: Invalid login credentials"
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid login credentials"},
                                     status=400)
        user = row[0]
        async with conn.transaction():
            token = (await (await conn.execute(
                "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after, user_agent, ip) "
                "VALUES (gen_random_uuid(), %s, now(), now(), 'aal1', now() + make_interval(days => %s), %s, %s) "
                "RETURNING id",
                (user, SESSION_DAYS, request.headers.get("User-Agent", ""), client_ip(request)))).fetchone())[0]
            await conn.execute("INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, session_id, "
                               "created_at, updated_at) VALUES ('00000000-0000-0000-0000-000000000000', %s, %s, "
                               "false, %s, now(), now())",
                               (secrets.token_urlsafe(24), str(user), token))
            await conn.execute("UPDATE auth.users SET last_sign_in_at = now(), updated_at = now() WHERE id = %s",
                               (user,))
            await conn.execute(AUDIT_SQL, ("login", user, email, "account", client_ip(request)))
    return web.json_response({"access_token": str(token), "token_type": "bearer", "user": {"id": str(user)}})


async def session_user(request: web.Request, conn):
    """The user of the request's bearer session, or None (no token, not a session, expired)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    try:
        token = str(uuid.UUID(token))
    except ValueError:
        return None
    row = await (await conn.execute("SELECT user_id FROM auth.sessions WHERE id = %s AND not_after > now()",
                                    (token,))).fetchone()
    if row:
        request["user_id"] = row[0]
    return row[0] if row else None


def unauthorized(request: web.Request) -> web.Response:
    request["error"] = "unauthorized: missing or expired access token"
    return web.json_response({"error": "Unauthorized"}, status=401)


async def profile(request: web.Request) -> web.Response:
    """The signed-in user's profile and plan."""
    async with request.app["pool"].connection() as conn:
        user = await session_user(request, conn)
        if user is None:
            return unauthorized(request)
        row = await (await conn.execute(
            "SELECT p.email, p.full_name, s.tier, s.status FROM profiles p "
            "LEFT JOIN subscription_tiers s ON s.user_id = p.id WHERE p.id = %s", (user,))).fetchone()
    if row is None:
        return web.json_response({"error": "Profile not found"}, status=404)
    return web.json_response({"email": row[0], "full_name": row[1], "tier": row[2], "status": row[3]})
