"""Stripe activity faults (ACTIVITIES): free users pay for Pro (`upgrades`), paying users' cards are declined on
renewal (`declines`). It goes through localstripe's real API with the stripe SDK, so every change is delivered as
a signed webhook to the sandbox API, which verifies, records and applies it (or refuses it, as the scenario's
webhook mode says). Leaving it puts both sides of billing back to the seed (emulators/stripe/launcher.restart).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import stripe

from ...errors import SandboxError
from ..emulators.stripe import launcher
from ..emulators.stripe.seeding import client
from .base import Context

BACKDATE_S = 120       # scenario activity reads as started two minutes ago: past the runbooks' in-flight allowance
DECLINED_CARD = "4000000000000341"    # attaches, then every charge is declined (card_declined)
GOOD_CARD = "4242424242424242"
ACTIVITY_USERS = 3     # users a billing scenario touches
DELIVERY_TIMEOUT_S = 30


def upgrades(env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Free users pay for Pro: a customer with a card and a subscription each, as checkout would make them."""
    api = client(env)
    users = conn.execute("SELECT s.user_id::text, p.email FROM public.subscription_tiers s JOIN public.profiles p "
                         "ON p.id = s.user_id WHERE s.tier = 'free' ORDER BY s.created_at, s.user_id LIMIT %s",
                         [ACTIVITY_USERS]).fetchall()
    for user_id, email in users:
        pm = _card(api, GOOD_CARD)
        customer = api.v1.customers.create({"email": email, "metadata": {"user_id": user_id}, "payment_method": pm,
                                            "invoice_settings": {"default_payment_method": pm}})
        api.v1.subscriptions.create({"customer": customer.id, "items": [{"plan": "pro_monthly"}],
                                     "metadata": {"user_id": user_id}})
    return {"users": [u for u, _ in users]}


def declines(env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Paying users' cards start being declined: a renewal invoice each, charged and refused."""
    api = client(env)
    rows = conn.execute("SELECT user_id::text, stripe_customer_id, stripe_subscription_id, tier FROM "
                        "public.subscription_tiers WHERE status = 'active' AND tier <> 'free' "
                        "ORDER BY created_at, user_id LIMIT %s", [ACTIVITY_USERS]).fetchall()
    for _, customer, subscription, tier in rows:
        pm = _card(api, DECLINED_CARD)
        api.v1.payment_methods.attach(pm, {"customer": customer})
        api.v1.customers.update(customer, {"invoice_settings": {"default_payment_method": pm}})
        api.v1.invoice_items.create({"customer": customer, "amount": 4900 if tier == "pro" else 49900,
                                     "currency": "usd"})
        invoice = api.v1.invoices.create({"customer": customer, "subscription": subscription})
        with contextlib.suppress(stripe.CardError):   # the decline is the point: Stripe sends invoice.payment_failed
            api.v1.invoices.pay(invoice.id)
    return {"users": [r[0] for r in rows]}


def _card(api: stripe.StripeClient, number: str) -> str:
    return api.v1.payment_methods.create({"type": "card", "card": {"number": number, "exp_month": 12,
                                                                   "exp_year": 2034, "cvc": "123"}}).id


ACTIVITIES: dict[str, Callable[[dict[str, str], psycopg.Connection], dict[str, Any]]] = {
    "upgrades": upgrades, "declines": declines}


def make_activity(kind: str, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Do the scenario's Stripe activity, wait until each of its events was delivered (answered or refused),
    then date it BACKDATE_S earlier, so a runbook run at once sees it as settled."""
    since = int(time.time()) - 1
    done = ACTIVITIES[kind](env, conn)
    api = client(env)
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    # counted again on each check: the visitors' billing updates may add events (and deliveries) meanwhile
    while _deliveries(conn, since) < (created := _events_since(api, since)):
        if time.monotonic() > deadline:
            raise SandboxError(f"scenario activity: Stripe delivered {_deliveries(conn, since)} of {created} "
                               f"webhooks to the sandbox API in {DELIVERY_TIMEOUT_S} s (see logs/localstripe.log)")
        time.sleep(0.2)
    httpx.post(f"{env['AIAS_SANDBOX_STRIPE_API_BASE']}/_config/backdate", json={"since": since, "seconds": BACKDATE_S},
               timeout=10).raise_for_status()
    return done | {"events": created}


def _events_since(api: stripe.StripeClient, since: int) -> int:
    return sum(1 for _ in api.v1.events.list({"created": {"gte": since}, "limit": 100}).auto_paging_iter())


def _deliveries(conn: psycopg.Connection, since: float) -> int:
    return conn.execute("SELECT count(*) FROM public.api_requests WHERE path = '/api/stripe/webhook' "
                        "AND created_at >= to_timestamp(%s)", [since]).fetchone()[0]


@dataclass(frozen=True)
class StripeActivity:
    """The activity `kind`, delivered before make returns; reset restarts Stripe from the seed."""

    kind: str

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make_activity(self.kind, ctx.env, conn)

    def reset(self, ctx: Context) -> None:
        launcher.restart(ctx.state, ctx.save)
