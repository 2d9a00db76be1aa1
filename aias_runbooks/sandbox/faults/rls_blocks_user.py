"""The rls-blocks-user fault: a member whose own tenant's workflows are hidden from them by a policy change.

A new user, EMAIL, signs up through the sandbox API's real /api/auth/signup, confirms their email and joins the
first tenant (by slug) that has workflows, as a `member` (an accepted invitation). Then a policy change, as a
careless migration or a dashboard edit would make it: `workflows_select_member` now matches the workflows a user
created (`user_id = auth.uid()`) instead of their tenants' (`tenant_id IN private.user_tenant_ids()`). The new member
created none, so under RLS they see none of their tenant's workflows (every other read still matches).

`rls-user.json` in the sandbox folder says who it is (user id, email, tenant; no password): tests read it. Leaving the
scenario restores the policy and deletes the user and every row and log line of theirs.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ...errors import SandboxError
from .base import Context, remove_users

EMAIL = "rls.member@example.test"
CLIENT = "198.51.100.240"            # a documentation address none of the visitors use
REQUEST_ID_PREFIX = "scenario-rls-"
FILE = "rls-user.json"
LOG_TIMEOUT_S = 30
BROKEN_POLICY = "ALTER POLICY workflows_select_member ON public.workflows USING (user_id = (SELECT auth.uid()))"
MEMBER_POLICY = ("ALTER POLICY workflows_select_member ON public.workflows "
                 "USING (tenant_id IN (SELECT private.user_tenant_ids()))")


def make_activity(folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Sign the member up, let them join a tenant, break the workflows policy; record rls-user.json."""
    reset(folder, conn)       # a previous run's leftovers (the email is fixed)
    answer = httpx.post(env["AIAS_SANDBOX_API_URL"] + "/api/auth/signup", timeout=10,
                        json={"email": EMAIL, "password": secrets.token_urlsafe(12)},
                        headers={"X-Forwarded-For": CLIENT, "X-Request-Id": REQUEST_ID_PREFIX + secrets.token_hex(8)})
    if answer.status_code != 201:
        raise SandboxError(f"scenario rls-blocks-user: signup answered HTTP {answer.status_code}")
    user_id = answer.json()["user"]["id"]
    tenant = conn.execute("SELECT t.id, t.slug FROM public.tenants t WHERE EXISTS "
                          "(SELECT 1 FROM public.workflows w WHERE w.tenant_id = t.id) ORDER BY t.slug LIMIT 1"
                          ).fetchone()
    with conn.transaction():
        conn.execute("UPDATE auth.users SET email_confirmed_at = now() WHERE id = %s", [user_id])
        conn.execute("INSERT INTO public.tenant_members (tenant_id, user_id, role) VALUES (%s, %s, 'member')",
                     [tenant[0], user_id])
        conn.execute("UPDATE public.profiles SET tenant_id = %s WHERE id = %s", [tenant[0], user_id])
        conn.execute(BROKEN_POLICY)
    deadline = time.monotonic() + LOG_TIMEOUT_S
    while not conn.execute("SELECT count(*) FROM public.api_requests WHERE request_id LIKE %s",
                           [REQUEST_ID_PREFIX + "%"]).fetchone()[0]:
        if time.monotonic() > deadline:
            raise SandboxError(f"scenario rls-blocks-user: the sandbox API did not log the signup in "
                               f"{LOG_TIMEOUT_S} s (see logs/api.log)")
        time.sleep(0.1)
    done = {"user_id": user_id, "email": EMAIL, "tenant_id": str(tenant[0]), "tenant": tenant[1],
            "table": "workflows"}
    (folder / FILE).write_text(json.dumps(done, indent=1))
    return done


def reset(folder: Path, conn: psycopg.Connection) -> None:
    """Undo it: the member policy back, the user and their rows, requests, audit entries and rate-limit windows gone."""
    users = [str(r[0]) for r in conn.execute("SELECT id FROM auth.users WHERE email = %s", [EMAIL]).fetchall()]
    with conn.transaction():
        conn.execute(MEMBER_POLICY)
        conn.execute("DELETE FROM public.api_requests WHERE (created_at > now() - interval '2 days' AND request_id "
                     "LIKE %s) OR user_id = ANY(%s::uuid[])", [REQUEST_ID_PREFIX + "%", users])
        conn.execute("DELETE FROM public.error_logs WHERE user_id = ANY(%s::uuid[])", [users])
        remove_users(conn, users)
        conn.execute("DELETE FROM public.rate_limits WHERE key = %s", [f"ip:{CLIENT}"])
    (folder / FILE).unlink(missing_ok=True)


class RlsBlocksUser:
    """A new member whose tenant's workflows a policy change hides from them (make_activity); reset undoes it."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make_activity(ctx.folder, ctx.env, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(ctx.folder, conn)
