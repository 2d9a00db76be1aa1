"""The sandbox's billing state: Stripe seeded consistent with the database.

At `sandbox up` the paying users of the seeded database are written to stripe-seed.json; server.py
creates them in localstripe (backdated, no deliveries) and writes what it created to stripe-seeded.json, which
record_seeded() stores in the database: the Stripe ids on subscription_tiers and the seeded events in
stripe_events as processed. restore() puts the database back to that seed when a scenario that changed billing
ends (the caller restarts Stripe from the seed, so both sides start over together).

Scenarios' Stripe activity (faults/stripe_activity.py) goes through localstripe's API with client().
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import stripe
from psycopg.rows import dict_row

from ....records import write_atomic

SEED_USERS_SQL = """
SELECT s.user_id::text AS user_id, coalesce(p.email, u.email) AS email, s.tier, s.status,
       extract(epoch FROM s.created_at)::bigint AS created,
       extract(epoch FROM s.current_period_end)::float8 AS period_end
FROM public.subscription_tiers s JOIN auth.users u ON u.id = s.user_id LEFT JOIN public.profiles p ON p.id = s.user_id
WHERE s.stripe_customer_id IS NOT NULL ORDER BY s.created_at, s.user_id
"""
RESTORE_SQL = """
WITH seed AS (SELECT * FROM json_to_recordset(%s::json) AS x(user_id uuid, tier text, status text, period_end float8))
UPDATE public.subscription_tiers t
SET tier = coalesce(seed.tier, 'free'), status = coalesce(seed.status, 'active'), stripe_customer_id = NULL,
    stripe_subscription_id = NULL, current_period_end = to_timestamp(seed.period_end)
FROM public.subscription_tiers t2 LEFT JOIN seed ON seed.user_id = t2.user_id
WHERE t.user_id = t2.user_id
  -- only rows that change: rewriting every row leaves one dead row per user (49 k at scale large, past twice the
  -- autovacuum trigger point: DB_VACUUM_LAG on healthy until autovacuum comes round)
  AND (t.tier, t.status, t.stripe_customer_id, t.stripe_subscription_id, t.current_period_end)
      IS DISTINCT FROM (coalesce(seed.tier, 'free'), coalesce(seed.status, 'active'), NULL::text, NULL::text,
                        to_timestamp(seed.period_end))
"""


def write_seed(conn: psycopg.Connection, folder: Path) -> None:
    """stripe-seed.json: the paying users server.py creates in localstripe."""
    rows = conn.cursor(row_factory=dict_row).execute(SEED_USERS_SQL).fetchall()
    write_atomic(folder / "stripe-seed.json", json.dumps(rows))
    forget_stripe(folder)


def forget_stripe(folder: Path) -> None:
    """Drop localstripe's store, so the next start seeds it again from stripe-seed.json."""
    (folder / "stripe-seeded.json").unlink(missing_ok=True)
    (folder / "localstripe.pickle").unlink(missing_ok=True)


def record_seeded(conn: psycopg.Connection, folder: Path) -> None:
    """Store what server.py created: Stripe ids on subscription_tiers, its events as processed history."""
    seeded = json.loads((folder / "stripe-seeded.json").read_text())
    links = [{"user_id": user, **ids} for user, ids in seeded["subscriptions"].items()]
    with conn.transaction():
        conn.execute("""
            UPDATE public.subscription_tiers t
            SET stripe_customer_id = x.customer, stripe_subscription_id = x.subscription
            FROM json_to_recordset(%s::json) AS x(user_id uuid, customer text, subscription text)
            WHERE t.user_id = x.user_id""", [json.dumps(links)])
        with conn.cursor().copy("COPY public.stripe_events (id, type, created_at, received_at, processed_at, status,"
                                " livemode, payload) FROM STDIN") as copy:
            for e in seeded["events"]:
                at = e["created"]
                copy.write_row((e["id"], e["type"], _ts(at), _ts(at + 1), _ts(at + 1.2), "processed", False,
                                json.dumps(e["payload"])))


def restore(conn: psycopg.Connection, folder: Path, since: float) -> None:
    """subscription_tiers back to the seed; the billing events received since `since`, and the webhook endpoint's
    requests and errors since then, forgotten (a scenario's refused deliveries must not read as today's errors)."""
    seed = json.loads((folder / "stripe-seed.json").read_text())
    with conn.transaction():
        conn.execute(RESTORE_SQL, [json.dumps(seed)])
        conn.execute("DELETE FROM public.stripe_events WHERE received_at >= to_timestamp(%s)", [since])
        conn.execute("DELETE FROM public.api_requests WHERE path = '/api/stripe/webhook' AND created_at >= "
                     "to_timestamp(%s)", [since])
        conn.execute("DELETE FROM public.error_logs WHERE path = '/api/stripe/webhook' AND created_at >= "
                     "to_timestamp(%s)", [since])


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def client(env: dict[str, str]) -> stripe.StripeClient:
    return stripe.StripeClient(env["AIAS_SANDBOX_STRIPE_SECRET_KEY"], max_network_retries=0,
                               base_addresses={"api": env["AIAS_SANDBOX_STRIPE_API_BASE"]})
