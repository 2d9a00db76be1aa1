"""Signup faults (ACTIVITIES: a rate-limited burst, an unverified sending domain, one domain's bounces), through
the sandbox API's real /api/auth/signup, and their undoing.

A scenario's signups go over HTTP like a browser's (each client named by X-Forwarded-For, as Vercel forwards
it), so the rate limiter, Supabase Auth's health, the account creation and the welcome email through Resend all
act for real; `up` returns once the API has logged every attempt.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ...errors import SandboxError
from ..emulators.hosted.state import services_state
from .base import Context

BURST_CLIENT = "203.0.113.7"      # a documentation address: one office NAT, or a bot, signing up in a loop
BURST_ATTEMPTS = 20
BURST_REFUSALS = 15                # the limiter allows 5 a minute: on a quick machine, 20 attempts give 15 refusals
MAX_BURST = 100
BOUNCING_DOMAIN = "globex.example"   # one customer company whose mail server rejects our mail
BOUNCES = 8                          # its people sign up: each welcome email bounces
LOG_TIMEOUT_S = 30
REQUEST_ID_PREFIX = "scenario-signup-"   # the scenario's own attempts, told apart from the visitors' signups


def _signup(env: dict[str, str], client: str, domain: str = "example.test") -> int:
    email = f"new.{secrets.token_hex(4)}@{domain}"
    return httpx.post(env["AIAS_SANDBOX_API_URL"] + "/api/auth/signup", timeout=10,
                      json={"email": email, "password": secrets.token_urlsafe(12)},
                      headers={"X-Forwarded-For": client,
                               "X-Request-Id": REQUEST_ID_PREFIX + secrets.token_hex(8)}).status_code


def burst(folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """One client signs up in a row until it has been refused (429) BURST_REFUSALS times: BURST_ATTEMPTS attempts
    on a quick machine, the first five succeeding. The limiter counts per clock minute, so on a slow machine (a
    loaded CI host) a burst that straddles minutes gets more through before the block: it goes on until the block
    (bounded by MAX_BURST), so the scenario is a blocked client with mostly refused signups however slow the host."""
    statuses: list[int] = []
    while statuses.count(429) < BURST_REFUSALS and len(statuses) < MAX_BURST:
        statuses.append(_signup(env, BURST_CLIENT))
    return {"key": f"ip:{BURST_CLIENT}", "statuses": statuses}


def unverified_domain(folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """The sending domain's DNS records were removed (Resend: failed); three people sign up and get no email."""
    with services_state(folder) as state:
        for domain in state["domains"]:
            domain["status"] = "failed"
    return {"statuses": [_signup(env, f"198.51.100.{20 + i}") for i in range(3)]}


def bounces_at(domains: list[str], folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """The mail servers of `domains` ("*": every one) reject our mail; one person of each domain in turn signs up,
    BOUNCES in all, from their own addresses: each signup succeeds, each welcome email bounces."""
    with services_state(folder) as state:
        state["bouncing"] = list(domains)
    named = [d for d in domains if d != "*"] or [f"mail{i}.example" for i in range(BOUNCES)]
    return {"statuses": [_signup(env, f"198.51.100.{40 + i}", named[i % len(named)]) for i in range(BOUNCES)]}


def bounces_one_domain(folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """BOUNCING_DOMAIN's mail server rejects our mail: the welcome emails of its people who sign up bounce."""
    return bounces_at([BOUNCING_DOMAIN], folder, env)


ACTIVITIES: dict[str, Callable[[Path, dict[str, str], psycopg.Connection], dict[str, Any]]] = {
    "burst": burst, "unverified-domain": unverified_domain, "bounces-one-domain": bounces_one_domain}


def make_activity(kind: str, folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Run the activity, then wait (bounded) until the API has logged each attempt."""
    since = time.time() - 1
    done = ACTIVITIES[kind](folder, env, conn)
    deadline = time.monotonic() + LOG_TIMEOUT_S
    while _logged(conn, since) < len(done["statuses"]):
        if time.monotonic() > deadline:
            raise SandboxError(f"scenario activity: the sandbox API logged {_logged(conn, since)} of "
                               f"{len(done['statuses'])} signups in {LOG_TIMEOUT_S} s (see logs/api.log)")
        time.sleep(0.1)
    return done


def _logged(conn: psycopg.Connection, since: float) -> int:
    return conn.execute("SELECT count(*) FROM public.api_requests WHERE path = '/api/auth/signup' "
                        "AND created_at >= to_timestamp(%s) AND request_id LIKE %s",
                        [since, REQUEST_ID_PREFIX + "%"]).fetchone()[0]


def reset(folder: Path, conn: psycopg.Connection, since: float) -> None:
    """Undo a signup scenario: blocks lifted, its signups, email errors and bounced emails forgotten, the domain
    verified again, every recipient's mail server accepting ours.

    Mail is accepted again first, the scenario's records forgotten after: the other way round, a visitor's signup
    refused between the two logged its email error after the logs were cleared, and the next scenario (another
    signup one, used at once) saw it as its own."""
    with services_state(folder) as state:
        for domain in state["domains"]:
            domain["status"] = "verified"
        state["bouncing"] = []
        state["emails"] = [e for e in state.get("emails", []) if e.get("last_event") != "bounced"]
    with conn.transaction():
        conn.execute("UPDATE public.rate_limits SET blocked_until = NULL WHERE blocked_until > now()")
        conn.execute("DELETE FROM public.api_requests WHERE path = '/api/auth/signup' AND created_at >= "
                     "to_timestamp(%s)", [since])
        conn.execute("DELETE FROM public.error_logs WHERE source = 'email' AND created_at >= to_timestamp(%s)",
                     [since])


@dataclass(frozen=True)
class SignupActivity:
    """Signups through the API (kind in ACTIVITIES), logged before make returns; reset undoes them."""

    kind: str

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make_activity(self.kind, ctx.folder, ctx.env, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(ctx.folder, conn, ctx.since)
