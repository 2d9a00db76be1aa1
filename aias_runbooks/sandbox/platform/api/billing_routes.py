"""The sandbox API's billing: POST /api/stripe/webhook (verified with the stripe SDK) and /api/billing/reconcile.

The webhook endpoint verifies each delivery's Stripe-Signature against the app's configured `whsec_` secret,
records the event in stripe_events (received, then processed, ignored or failed with the error) and applies
subscription changes to subscription_tiers. A delivery that fails verification is refused (400) and recorded
only in the request log: an unverified body is not evidence of anything. Reconcile (admin bearer token) sets
subscription_tiers from Stripe's subscription objects, in one transaction, as Stripe recommends.

Scenario keys read per request: webhook = "secret-mismatch" (the app holds a rotated secret the sender does not
know), "down" (the handler fails before doing anything: 500) or "insert-subscription" (a release whose handler
writes each subscription event as a new plan row, an upsert that lost its ON CONFLICT: every user has one already,
so PostgreSQL refuses it with subscription_tiers_user_id_key and the event is recorded as failed).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from typing import Any

import stripe
from aiohttp import web

# Stripe's subscription statuses, as subscription_tiers spells them (its CHECK constraint)
STATUSES = {"active": "active", "trialing": "trialing", "past_due": "past_due", "unpaid": "past_due",
            "canceled": "canceled", "incomplete": "incomplete", "incomplete_expired": "canceled", "paused": "canceled"}


def configure(app: web.Application) -> None:
    secret = os.environ.get("AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET", "")
    app.update(webhook_secret=secret,
               stale_webhook_secret="whsec_" + hashlib.sha256(f"rotated:{secret}".encode()).hexdigest()[:48],
               admin_token=os.environ.get("AIAS_SANDBOX_ADMIN_TOKEN", ""),
               stripe=stripe.StripeClient(os.environ.get("AIAS_SANDBOX_STRIPE_SECRET_KEY", "sk_test_unset"),
                                          base_addresses={"api": os.environ.get("AIAS_SANDBOX_STRIPE_API_BASE")},
                                          max_network_retries=0))
    app.router.add_post("/api/stripe/webhook", stripe_webhook)
    app.router.add_post("/api/billing/reconcile", reconcile)


async def stripe_webhook(request: web.Request) -> web.Response:
    mode = request.app["scenario"].get().get("webhook", "normal")
    if mode == "down":
        raise RuntimeError("billing service unavailable: webhook handler failed to start")
    secret = request.app["stale_webhook_secret" if mode == "secret-mismatch" else "webhook_secret"]
    payload = await request.read()
    try:
        stripe.Webhook.construct_event(payload, request.headers.get("Stripe-Signature"), secret)
        event = json.loads(payload)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        request["error"] = f"{type(exc).__name__}: {exc}"
        return web.json_response({"ok": False, "error": "signature verification failed"}, status=400)
    async with request.app["pool"].connection() as conn:
        status = await _receive(conn, event)
        if status in ("processed", "ignored"):
            return web.json_response({"received": True, "duplicate": True})
        try:
            async with conn.transaction():
                outcome = await apply_event(conn, event, mode)
                await conn.execute("UPDATE stripe_events SET status = %s, processed_at = now(), error = NULL "
                                   "WHERE id = %s", (outcome, event["id"]))
        except Exception as exc:
            request["error"] = f"{type(exc).__name__}: {exc}"
            await conn.execute("UPDATE stripe_events SET status = 'failed', error = %s WHERE id = %s",
                               (request["error"][:500], event["id"]))
            return web.json_response({"ok": False, "error": "event not processed"}, status=500)
    return web.json_response({"received": True})


async def _receive(conn, event: dict[str, Any]) -> str | None:
    """Record the event as received; the status of an earlier delivery of it, if any."""
    cur = await conn.execute(
        "INSERT INTO stripe_events (id, type, created_at, livemode, payload) "
        "VALUES (%s, %s, to_timestamp(%s), %s, %s) ON CONFLICT (id) DO NOTHING RETURNING status",
        (event["id"], event["type"], event["created"], bool(event.get("livemode")), json.dumps(event)))
    if await cur.fetchone():
        return None
    row = await (await conn.execute("SELECT status FROM stripe_events WHERE id = %s", (event["id"],))).fetchone()
    return row[0]


async def apply_event(conn, event: dict[str, Any], mode: str = "normal") -> str:
    """Apply one verified event to subscription_tiers: 'processed', or 'ignored' for types billing does not use."""
    kind, obj = event["type"], event["data"]["object"]
    if kind.startswith("customer.subscription."):
        await (_insert_subscription if mode == "insert-subscription" else _set_subscription)(conn, obj)
    elif kind in ("invoice.paid", "invoice.payment_succeeded") and obj.get("subscription"):
        await conn.execute("UPDATE subscription_tiers SET status = 'active', updated_at = now() "
                           "WHERE stripe_subscription_id = %s AND status IN ('past_due', 'incomplete')",
                           (obj["subscription"],))
    elif kind == "invoice.payment_failed" and obj.get("subscription"):
        await conn.execute("UPDATE subscription_tiers SET status = 'past_due', updated_at = now() "
                           "WHERE stripe_subscription_id = %s AND status = 'active'", (obj["subscription"],))
    elif kind == "checkout.session.completed":
        user = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("user_id")
        await conn.execute("UPDATE subscription_tiers SET stripe_customer_id = %s, stripe_subscription_id = %s, "
                           "updated_at = now() WHERE user_id = %s",
                           (obj.get("customer"), obj.get("subscription"), user))
    else:
        return "ignored"
    return "processed"


async def _cancel_unknown(conn, known: set[str], only: set[str]) -> list[dict[str, Any]]:
    """Rows that grant a plan through a subscription Stripe does not have: canceled."""
    cur = await conn.execute(
        "WITH gone AS (SELECT user_id, tier, status FROM subscription_tiers"
        " WHERE stripe_subscription_id IS NOT NULL AND NOT stripe_subscription_id = ANY(%s)"
        " AND (cardinality(%s::text[]) = 0 OR stripe_subscription_id = ANY(%s))"
        " AND status IN ('active', 'trialing', 'past_due') FOR UPDATE)"
        " UPDATE subscription_tiers t SET status = 'canceled', updated_at = now() FROM gone"
        " WHERE t.user_id = gone.user_id RETURNING t.user_id, t.stripe_subscription_id, gone.tier, gone.status",
        (sorted(known), sorted(only), sorted(only)))
    return [{"user_id": str(user), "subscription": sub, "from": {"tier": tier, "status": status},
             "to": {"tier": tier, "status": "canceled"}} for user, sub, tier, status in await cur.fetchall()]


def tier_of(sub: dict[str, Any]) -> str | None:
    """The plan tier a subscription pays for: its price's (or legacy plan's) metadata.tier, else lookup_key."""
    items = (sub.get("items") or {}).get("data") or [{}]
    price = items[0].get("price") or items[0].get("plan") or sub.get("plan") or {}
    return (price.get("metadata") or {}).get("tier") or price.get("lookup_key")


async def _set_subscription(conn, sub: dict[str, Any]) -> None:
    user = (sub.get("metadata") or {}).get("user_id")
    if not user:
        row = await (await conn.execute("SELECT user_id FROM subscription_tiers WHERE stripe_customer_id = %s",
                                        (sub["customer"],))).fetchone()
        user = row and row[0]
    if not user:
        raise LookupError(f"no user for Stripe customer {sub['customer']}")
    updated = await conn.execute(
        "UPDATE subscription_tiers SET tier = %s, status = %s, stripe_customer_id = %s, stripe_subscription_id = %s,"
        " current_period_end = to_timestamp(%s), updated_at = now() WHERE user_id = %s",
        (tier_of(sub), STATUSES.get(sub["status"], "incomplete"), sub["customer"], sub["id"],
         sub.get("current_period_end"), user))
    if updated.rowcount == 0:
        raise LookupError(f"no subscription row for user {user}")


async def _insert_subscription(conn, sub: dict[str, Any]) -> None:
    """The faulty release's write: the subscription as a new plan row of its user (INSERT without ON CONFLICT)."""
    await conn.execute(
        "INSERT INTO subscription_tiers (user_id, tier, status, stripe_customer_id, stripe_subscription_id,"
        " current_period_end) VALUES (%s, %s, %s, %s, %s, to_timestamp(%s))",
        ((sub.get("metadata") or {}).get("user_id"), tier_of(sub), STATUSES.get(sub["status"], "incomplete"),
         sub["customer"], sub["id"], sub.get("current_period_end")))


async def reconcile(request: web.Request) -> web.Response:
    """Set subscription_tiers from Stripe's subscriptions; body {"subscriptions": [...]} limits it to those."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not request.app["admin_token"] or not hmac.compare_digest(given, request.app["admin_token"]):
        return web.json_response({"ok": False, "error": "admin token required"}, status=401)
    body = await request.json() if request.can_read_body else {}
    only = set(body.get("subscriptions") or [])
    client = request.app["stripe"]
    subs = await asyncio.to_thread(
        lambda: [s.to_dict() for s in client.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter()])
    changes = []
    async with request.app["pool"].connection() as conn, conn.transaction():
        for sub in subs:
            if only and sub["id"] not in only:
                continue
            before = await (await conn.execute(
                "SELECT user_id, tier, status FROM subscription_tiers WHERE stripe_subscription_id = %s "
                "OR user_id::text = %s", (sub["id"], (sub.get("metadata") or {}).get("user_id") or ""))).fetchone()
            wanted = (tier_of(sub), STATUSES.get(sub["status"], "incomplete"))
            if before and (before[1], before[2]) != wanted:
                await _set_subscription(conn, sub)
                changes.append({"user_id": str(before[0]), "subscription": sub["id"],
                                "from": {"tier": before[1], "status": before[2]},
                                "to": {"tier": wanted[0], "status": wanted[1]}})
        changes += await _cancel_unknown(conn, {s["id"] for s in subs}, only)
    return web.json_response({"ok": True, "checked": len(subs), "changed": changes})
