"""The sandbox's Stripe: localstripe, with its state in this sandbox's folder and seeded from the database.

Run as `python -m aias_runbooks.sandbox.emulators.stripe.server --port N --state-dir D`. localstripe itself keeps its
store in one fixed file (/tmp/localstripe.pickle) whatever its flags, so two sandboxes on one machine (the
demo's and the test suite's) would load and overwrite each other's customers: here the store lives in
D/localstripe.pickle, written atomically after each change.

When D/stripe-seed.json exists, the store starts from it: one customer (card on file) and one subscription per
paying user of the seeded database, created with localstripe's own objects, dated as the database dates them and
without webhook deliveries (that history is already in stripe_events). What was created is written to
D/stripe-seeded.json ({user_id: customer, subscription}, events) for `sandbox up` to record in the database.

Webhooks go to --webhook-url, signed with the secret in AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET (the environment,
never the command line). POST /_config/backdate {"since": t, "seconds": s} moves everything created since t
back by s seconds: a scenario's activity then reads as having started minutes ago, past the runbooks'
in-flight allowance, the moment `sandbox up --scenario` returns.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources, server, webhooks

PLANS = {"pro": 4900, "enterprise": 49900}        # monthly price in cents, per tier (plan id: <tier>_monthly)
GOOD_CARD = "4242424242424242"


def keep_store_in(path: Path) -> None:
    """Point localstripe's store at path; written once per API call (its middleware), not per object."""
    def load(store: resources.Store) -> None:
        if path.exists():
            with path.open("rb") as fh:
                store.clear()
                store.update(pickle.load(fh))

    def dump(store: resources.Store) -> None:
        partial = path.with_suffix(".partial")
        with partial.open("wb") as fh:
            pickle.dump(dict(store), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    resources.Store.__setitem__ = dict.__setitem__
    resources.Store.__delitem__ = dict.__delitem__


def report_invoice_declines() -> None:
    """A declined invoice payment sends payment_intent.payment_failed and invoice.payment_failed (and makes a
    renewing subscription past_due), as Stripe does: localstripe's POST /v1/invoices/{id}/pay drops the failure."""
    confirm = resources.PaymentIntent._confirm

    def confirm_reporting(self, on_failure_now):
        confirm(self, self._report_failure if self.invoice else on_failure_now)

    resources.PaymentIntent._confirm = confirm_reporting


def list_events_of_types() -> None:
    """GET /v1/events takes `types` (up to 20 event types), as Stripe's API does: localstripe knows only `type`."""
    list_all = resources.Event._api_list_all.__func__

    def list_of_types(cls, url, types=None, **kwargs):
        listed = list_all(cls, url, **kwargs)
        if types is not None:
            wanted = set(types if isinstance(types, list) else [types])
            listed._list = [event for event in listed._list if event.type in wanted]
        return listed

    resources.Event._api_list_all = classmethod(list_of_types)


def plan_id(tier: str) -> str:
    return f"{tier}_monthly"


def create_plans() -> None:
    for tier, amount in PLANS.items():
        resources.Plan(id=plan_id(tier), amount=amount, currency="usd", interval="month",
                       product={"name": f"AIAS {tier.title()}"}, metadata={"tier": tier})


def subscribe(user: dict[str, Any], card: str = GOOD_CARD) -> tuple[Any, Any]:
    """A customer with a card on file and a subscription to the user's tier, as checkout would leave them."""
    pm = resources.PaymentMethod(type="card", card={"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"})
    customer = resources.Customer(email=user["email"], metadata={"user_id": user["user_id"]}, payment_method=pm.id,
                                  invoice_settings={"default_payment_method": pm.id})
    trial = user.get("status") == "trialing"
    sub = resources.Subscription(customer=customer.id, items=[{"plan": plan_id(user["tier"])}],
                                 metadata={"user_id": user["user_id"]}, trial_period_days=14 if trial else None)
    if trial:   # localstripe leaves a trial 'incomplete' (it has no trials); Stripe says 'trialing'
        sub.status, sub.trial_start, sub.trial_end = "trialing", sub.created, sub.created + 14 * 86400
    if user.get("status") == "canceled":
        resources.Subscription._api_delete(sub.id)
    return customer, sub


def seed(users: list[dict[str, Any]]) -> dict[str, Any]:
    """Create the seeded customers and subscriptions, dated as the database dates them, with no deliveries."""
    deliver, resources.schedule_webhook = resources.schedule_webhook, lambda event: None
    try:
        create_plans()
        first = min((int(u["created"]) for u in users), default=0)
        for obj in resources.store.values():   # the plans predate every customer
            obj.created = first or obj.created
        mapping = {}
        for user in users:
            before = len(resources.store)
            customer, sub = subscribe(user)
            # the objects it created: the store's newest keys (a dict keeps insertion order); not a set difference
            # of the whole store per user, which is quadratic in the paying users
            for key in itertools.islice(reversed(resources.store), len(resources.store) - before):
                resources.store[key].created = int(user["created"])
            mapping[user["user_id"]] = {"customer": customer.id, "subscription": sub.id, "status": sub.status}
    finally:
        resources.schedule_webhook = deliver
    events = [{"id": e.id, "type": e.type, "created": e.created, "payload": e._export()}
              for key, e in resources.store.items() if key.startswith("event:")]
    return {"subscriptions": mapping, "events": events}


async def backdate(request: web.Request) -> web.Response:
    data = await request.json()
    since, seconds = int(data["since"]), int(data["seconds"])
    moved = 0
    for obj in resources.store.values():
        if getattr(obj, "created", 0) >= since:
            obj.created -= seconds
            moved += 1
    resources.store.dump_to_disk()
    return web.json_response({"moved": moved})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--webhook-url", help="where localstripe delivers every event, signed")
    args = parser.parse_args()
    keep_store_in(args.state_dir / "localstripe.pickle")
    report_invoice_declines()
    list_events_of_types()
    resources.store.try_load_from_disk()
    seed_file, seeded_file = args.state_dir / "stripe-seed.json", args.state_dir / "stripe-seeded.json"
    if not resources.store and seed_file.exists():
        result = seed(json.loads(seed_file.read_text()))
        resources.store.dump_to_disk()
        partial = seeded_file.with_suffix(".partial")
        partial.write_text(json.dumps(result))
        os.replace(partial, seeded_file)
    if args.webhook_url:
        webhooks.register_webhook("aias", args.webhook_url, os.environ["AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET"], None)
    server.app.router.add_post("/_config/backdate", backdate)
    sys.argv = [sys.argv[0], "--port", str(args.port), "--from-scratch"]   # the store is loaded already
    server.start()


if __name__ == "__main__":
    main()
