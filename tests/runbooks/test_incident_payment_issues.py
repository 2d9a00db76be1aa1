"""incident-payment-issues through the runner, against the sandbox's real billing flow: failed invoices that
localstripe delivers as signed webhooks to the sandbox API, and a Stripe that does not answer."""

from __future__ import annotations

import os
import socket
import time

import psycopg
import pytest

from ..helpers import billing_healthy, finding, sandbox_dsn

PAYMENTS, WEBHOOKS = "incident-payment-issues", "stripe-webhook-failures"


def test_healthy_billing_has_no_problem(quiet, run):
    billing_healthy(run(PAYMENTS))


def test_payment_failures_list_the_users_to_notify(run, scenario):
    scenario("payment-failures")
    with psycopg.connect(sandbox_dsn()) as conn:
        past_due = {e for (e,) in conn.execute("SELECT p.email FROM subscription_tiers s JOIN profiles p "
                                               "ON p.id = s.user_id WHERE s.status = 'past_due'")}
    assert len(past_due) == 3, "the app processed each invoice.payment_failed"
    result = run(PAYMENTS)
    assert result.proc.returncode == 2
    failing = finding(result, "PAYMENTS_FAILING")
    assert failing["severity"] == "CRITICAL" and failing["evidence"]["by_reason"] == {"card_declined": 3}
    assert set(failing["evidence"]["users"]) == past_due
    assert result.codes["SUBSCRIPTIONS_MATCH"] == "OK", "Stripe and the app agree: they are past due on both sides"
    webhooks = run(WEBHOOKS)
    assert webhooks.proc.returncode == 0, "webhooks work: the failures are the cards'"


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_stripe_not_answering_is_a_finding_not_a_traceback(run, fault):
    """Nothing listening (refused at once), or a server that accepts and never answers (each read is bounded by
    the client's 10 s timeout, and only the first is waited for: later Stripe reads are skipped)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if fault == "frozen":
            sock.listen(16)             # the kernel completes connections; nobody ever reads or answers
        port = sock.getsockname()[1]
        if fault == "stopped":
            sock.close()
        env = os.environ | {"AIAS_SANDBOX_STRIPE_API_BASE": f"http://127.0.0.1:{port}"}
        started = time.monotonic()
        result = run(PAYMENTS, env=env)
    assert result.proc.returncode == 2
    assert result.codes["STRIPE_UNREACHABLE"] == "CRITICAL" and "RUNBOOK_ERROR" not in result.codes
    said = [f for f in result.verdict["findings"] if f["code"] == "STRIPE_UNREACHABLE"]
    assert len(said) == 1, "said once; later Stripe reads are skipped"
    assert ("timed out" if fault == "frozen" else "cannot reach") in said[0]["title"]
    assert time.monotonic() - started < 90
    assert "Traceback" not in result.proc.stderr
