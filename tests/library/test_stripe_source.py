"""aias_runbooks.sources.stripe against a real localstripe (the sandbox's stripe_server), seeded past one page."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import stripe

from aias_runbooks.sandbox import processes
from aias_runbooks.sources.stripe import StripeClient, StripeUnavailable

from ..helpers import free_port_base, wait_for

KEY = "sk_test_sourcekey0123456789"
SEEDED = 120
STATUSES = ["active", "trialing", "canceled"]
CARD = {"exp_month": 12, "exp_year": 2034, "cvc": "123"}
DECLINES_AFTER_3DS = "4000008260003178"   # localstripe: asks for authentication, then the charge is declined


def seed_users() -> list[dict]:
    now = time.time()
    return [{"user_id": f"u{i}", "email": f"u{i}@example.com", "tier": "pro" if i % 2 else "enterprise",
             "status": STATUSES[i % 3], "created": now - 86400 * (i + 1)} for i in range(SEEDED)]


def answering(client: StripeClient, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        pytest.fail(f"stripe_server exited with {server.returncode}")
    try:
        return client.ping()["ok"]
    except StripeUnavailable:
        return False


@pytest.fixture(scope="module")
def api_base(tmp_path_factory):
    """A seeded stripe_server on a free port, in its own state folder; stopped after the module."""
    state = tmp_path_factory.mktemp("stripe-state")
    (state / "stripe-seed.json").write_text(json.dumps(seed_users()))
    port = free_port_base()
    log = (state / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "aias_runbooks.sandbox.emulators.stripe.server", "--port",
                               str(port), "--state-dir", str(state)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answering(StripeClient(KEY, base, timeout_s=2), server), 60, "stripe_server to answer")
        yield base
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


@pytest.fixture(scope="module")
def client(api_base) -> StripeClient:
    return StripeClient(KEY, api_base, timeout_s=5)


@pytest.fixture(scope="module")
def declined(api_base) -> dict:
    """A paying user whose next invoice is declined: invoice.payment_failed, subscription past due."""
    sdk = stripe.StripeClient(KEY, base_addresses={"api": api_base}, max_network_retries=0)
    since = datetime.now(timezone.utc)
    good = sdk.v1.payment_methods.create(params={"type": "card", "card": {"number": "4242424242424242", **CARD}})
    customer = sdk.v1.customers.create(params={
        "email": "late@example.com", "metadata": {"user_id": "late_payer"}, "payment_method": good.id,
        "invoice_settings": {"default_payment_method": good.id}})
    sub = sdk.v1.subscriptions.create(params={"customer": customer.id, "items": [{"plan": "pro_monthly"}],
                                              "metadata": {"user_id": "late_payer"}})
    bad = sdk.v1.payment_methods.create(params={"type": "card", "card": {"number": DECLINES_AFTER_3DS, **CARD}})
    sdk.v1.payment_methods.attach(bad.id, params={"customer": customer.id})
    sdk.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": bad.id}})
    sdk.v1.invoice_items.create(params={"amount": 1234, "currency": "usd", "customer": customer.id})
    invoice = sdk.v1.invoices.pay(sdk.v1.invoices.create(params={"customer": customer.id}).id)
    intent = sdk.v1.payment_intents.retrieve(invoice.payment_intent)
    with pytest.raises(stripe.CardError):
        sdk.raw_request("post", f"/v1/payment_intents/{intent.id}/_authenticate",
                        client_secret=intent.client_secret, success="true")
    return {"since": since, "customer": customer.id, "subscription": sub.id, "invoice": invoice.id}


def test_subscriptions_follow_pages(client):
    frame = client.subscriptions()
    seeded = frame[frame.user_id.isin({u["user_id"] for u in seed_users()})].set_index("user_id")
    assert len(seeded) == SEEDED   # more than one page of 100
    for i in range(SEEDED):
        row = seeded.loc[f"u{i}"]
        assert (row.status, row.tier) == (STATUSES[i % 3], "pro" if i % 2 else "enterprise")
        assert row.plan_id == f"{row.tier}_monthly"
    assert str(frame.created.dtype).endswith(", UTC]")


def test_events_since(client, declined):
    types = ["customer.created", "customer.subscription.created", "invoice.payment_failed"]
    recent = client.events(declined["since"], types)
    assert list(recent.columns) == ["id", "type", "created", "object_id", "customer", "subscription", "user_id",
                                    "pending_webhooks"]
    assert (recent.created >= pd.Timestamp(declined["since"]).floor("s")).all()
    assert recent.created.is_monotonic_increasing
    failed = recent[recent.type == "invoice.payment_failed"]
    assert failed[["object_id", "customer", "subscription"]].values.tolist() == [
        [declined["invoice"], declined["customer"], declined["subscription"]]]
    created = recent[recent.type == "customer.subscription.created"]
    assert created[["subscription", "user_id"]].values.tolist() == [[declined["subscription"], "late_payer"]]
    assert str(recent.pending_webhooks.dtype) == "Int64" and recent.pending_webhooks.isna().all()

    history = client.events(declined["since"] - timedelta(days=365), ["customer.subscription.created"])
    assert set(history.user_id) >= {f"u{i}" for i in range(SEEDED)}


def test_events_empty_keeps_columns(client):
    frame = client.events(datetime.now(timezone.utc) + timedelta(days=1), ["invoice.payment_failed"])
    assert frame.empty and "pending_webhooks" in frame.columns
    assert str(frame.created.dtype).endswith(", UTC]")


def test_failed_payments(client, declined):
    frame = client.failed_payments(declined["since"])
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row.invoice, row.customer, row.subscription) == (
        declined["invoice"], declined["customer"], declined["subscription"])
    assert (row.user_id, row.email, row.currency, row.attempt_count) == ("late_payer", "late@example.com", "usd", 1)
    assert row.amount_due == pytest.approx(49 + 12.34)
    assert row.reason == "card_declined"
    assert row.failed_at >= pd.Timestamp(declined["since"]).floor("s")
    assert client.failed_payments(declined["since"] + timedelta(days=1)).empty


def test_what_localstripe_cannot_report(client):
    for answer in (client.undelivered_events(datetime.now(timezone.utc)), client.webhook_endpoints()):
        assert isinstance(answer, str) and answer.startswith("not reported by this Stripe API (localstripe")


def test_closed_port_is_unavailable_quickly():
    port = next(p for p in range(free_port_base(), 65535) if processes.port_free(p))
    client = StripeClient(KEY, f"http://127.0.0.1:{port}", timeout_s=5)
    assert KEY not in repr(client) and f"127.0.0.1:{port}" in repr(client)
    start = time.monotonic()
    with pytest.raises(StripeUnavailable) as caught:
        client.ping()
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert KEY not in message and "sk_test_" not in message and "\n" not in message
    assert message.startswith(f"cannot reach Stripe API at http://127.0.0.1:{port}: APIConnectionError")
    with pytest.raises(StripeUnavailable):
        client.subscriptions()


def test_silent_server_times_out_within_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = StripeClient(KEY, f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=1)
        start = time.monotonic()
        with pytest.raises(StripeUnavailable, match=r"^timed out waiting for Stripe API at http://127\.0\.0\.1:\d+: "):
            client.ping()
        assert time.monotonic() - start < 3


def test_refused_key_is_named_not_shown(api_base):
    key = "not_a_stripe_key_0123456789"   # localstripe accepts any sk_ key, refuses others
    with pytest.raises(StripeUnavailable) as caught:
        StripeClient(key, api_base).ping()
    assert str(caught.value).startswith(f"auth refused by Stripe API at {api_base}: AuthenticationError")
    assert key not in str(caught.value)
