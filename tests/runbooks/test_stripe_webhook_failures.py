"""stripe-webhook-failures through the runner, against the sandbox's real billing flow:
localstripe delivering signed webhooks to the sandbox API, which verifies them with the stripe SDK."""

from __future__ import annotations

import time

import psycopg
import pytest
import stripe
from dotenv import dotenv_values

from aias_runbooks import paths

from ..helpers import audit_records, billing_healthy, finding, leaks, sandbox_dsn, table_text

WEBHOOKS = "stripe-webhook-failures"
HOSTILE_EMAIL = "<img src=x onerror=alert(1)>*[x](javascript:alert(2))*@example.test"


def sandbox_env() -> dict[str, str]:
    return {k: v for k, v in dotenv_values(paths.sandbox_dir() / "sandbox.env").items() if v}


def stripe_client() -> stripe.StripeClient:
    env = sandbox_env()
    return stripe.StripeClient(env["AIAS_SANDBOX_STRIPE_SECRET_KEY"],
                               base_addresses={"api": env["AIAS_SANDBOX_STRIPE_API_BASE"]})


def recent_subscribers(minutes: int = 10) -> set[str]:
    """Users with a Stripe subscription created in the last minutes (the scenario's activity is dated 2 min back)."""
    since = int(time.time()) - minutes * 60
    return {s.metadata["user_id"] for s in stripe_client().v1.subscriptions.list({"status": "all", "limit": 100})
            .auto_paging_iter() if s.created >= since}


def rows_of(users: set[str]) -> dict[str, tuple[str, str, str]]:
    """{user_id: (email, tier, status)} from the database."""
    with psycopg.connect(sandbox_dsn()) as conn:
        return {str(u): (e, t, s) for u, e, t, s in conn.execute(
            "SELECT s.user_id, p.email, s.tier, s.status FROM subscription_tiers s JOIN profiles p ON p.id = s.user_id "
            "WHERE s.user_id = ANY(%s::uuid[])", [sorted(users)])}


def test_healthy_billing_has_no_problem(quiet, run):
    billing_healthy(run(WEBHOOKS))


@pytest.fixture
def drifted_paying_user():
    """A seeded paying user, named by no billing event of the last two hours, whose row says free: what a webhook
    lost last week leaves behind. The row is restored after."""
    events = stripe_client().v1.events.list({"created": {"gte": int(time.time()) - 7200}, "limit": 100})
    named = {e.data.object.to_dict().get(key) for e in events.auto_paging_iter() for key in ("customer", "id")}
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        user, email, _ = next(row for row in conn.execute(
            "SELECT s.user_id, p.email, s.stripe_customer_id FROM subscription_tiers s JOIN profiles p "
            "ON p.id = s.user_id WHERE s.tier = 'pro' AND s.status = 'active' AND s.stripe_subscription_id IS NOT NULL "
            "ORDER BY s.user_id") if row[2] not in named)
        conn.execute("UPDATE subscription_tiers SET tier = 'free' WHERE user_id = %s", (user,))
    yield str(user), email
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("UPDATE subscription_tiers SET tier = 'pro' WHERE user_id = %s", (user,))


def test_a_drift_older_than_the_window_is_found_by_compare_all_and_by_the_user(quiet, run, drifted_paying_user):
    user_id, email = drifted_paying_user
    window = run(WEBHOOKS, "-p", "signature_probe=false")
    assert window.codes["SUBSCRIPTIONS_MATCH"] == "OK", "by default only the customers the window's events name"
    assert window.proc.returncode == 0
    full = run(WEBHOOKS, "-p", "signature_probe=false", "-p", "compare=all")
    assert full.proc.returncode == 2
    mismatch = finding(full, "SUBSCRIPTION_MISMATCH")
    assert mismatch["severity"] == "CRITICAL" and mismatch["evidence"]["users"] == [f"{email} (paid, not upgraded)"]
    for who in (email, user_id):       # "my subscription didn't activate", a week after paying
        one = run(WEBHOOKS, "-p", "signature_probe=false", "-p", f"user={who}")
        assert finding(one, "SUBSCRIPTION_MISMATCH")["evidence"]["users"] == [f"{email} (paid, not upgraded)"], who


@pytest.fixture
def hostile_first_free_user():
    """The first free user (the first one a billing scenario upgrades) with an email any client could set."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        user, email = conn.execute("SELECT p.id, p.email FROM subscription_tiers s JOIN profiles p ON p.id = s.user_id "
                                   "WHERE s.tier = 'free' ORDER BY s.created_at, s.user_id LIMIT 1").fetchone()
        conn.execute("UPDATE profiles SET email = %s WHERE id = %s", (HOSTILE_EMAIL, user))
    yield str(user)
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("UPDATE profiles SET email = %s WHERE id = %s", (email, user))


def test_secret_mismatch_names_the_users_who_paid_and_are_not_upgraded(run, scenario, hostile_first_free_user):
    scenario("webhook-secret-mismatch")
    paid = recent_subscribers()
    assert len(paid) == 3 and hostile_first_free_user in paid
    assert {tier for _, tier, _ in rows_of(paid).values()} == {"free"}, "every delivery was refused"
    result = run(WEBHOOKS)
    assert result.proc.returncode == 2
    for code in ("WEBHOOK_SIGNATURE_REJECTED", "WEBHOOK_EVENTS_UNPROCESSED", "WEBHOOK_SUCCESS_RATE_LOW",
                 "SUBSCRIPTION_MISMATCH"):
        assert result.codes[code] == "CRITICAL", result.codes
    assert "WEBHOOK_ENDPOINT_UNREACHABLE" not in result.codes, "the endpoint answers: it is the secret"
    assert result.verdict["summary"].startswith("CRITICAL: WEBHOOK_SIGNATURE_REJECTED"), "the cause leads the verdict"
    mismatch = finding(result, "SUBSCRIPTION_MISMATCH")
    assert mismatch["evidence"]["by_kind"] == {"paid, not upgraded": 3}
    emails = {email for email, _, _ in rows_of(paid).values()}
    assert {u.rsplit(" (", 1)[0] for u in mismatch["evidence"]["users"]} == emails
    assert set(finding(result, "WEBHOOK_EVENTS_UNPROCESSED")["evidence"]["users"]) == paid
    html = (result.folder / "report.html").read_text()
    assert "<img src=x" not in html and "onerror=alert(1)>" not in html, "a user's email is shown as text"

    one = sorted(paid - {hostile_first_free_user})[0]   # "my subscription didn't activate": no customer on their row
    support = run("user-support", "-p", f"user={one}")
    mismatch = finding(support, "SUBSCRIPTION_MISMATCH")
    assert mismatch["severity"] == "CRITICAL" and mismatch["evidence"]["by_kind"] == {"paid, not upgraded": 1}
    assert [u.rsplit(" (", 1)[0] for u in mismatch["evidence"]["users"]] == [rows_of({one})[one][0]]


def test_endpoint_down_is_unreachable_not_a_secret_problem(run, scenario):
    scenario("webhook-endpoint-down")
    paid = recent_subscribers()
    result = run(WEBHOOKS)
    assert result.proc.returncode == 2
    for code in ("WEBHOOK_ENDPOINT_UNREACHABLE", "WEBHOOK_EVENTS_UNPROCESSED", "WEBHOOK_SUCCESS_RATE_LOW",
                 "SUBSCRIPTION_MISMATCH"):
        assert result.codes[code] == "CRITICAL", result.codes
    assert "WEBHOOK_SIGNATURE_REJECTED" not in result.codes
    assert result.verdict["summary"].startswith("CRITICAL: WEBHOOK_ENDPOINT_UNREACHABLE")
    assert "HTTP 500" in finding(result, "WEBHOOK_ENDPOINT_UNREACHABLE")["title"]
    assert set(finding(result, "WEBHOOK_EVENTS_UNPROCESSED")["evidence"]["users"]) == paid


DUPLICATE_PLAN = ('UniqueViolation: duplicate key value violates unique constraint "subscription_tiers_user_id_key" '
                  'DETAIL: Key (user_id)=(?) already exists.')


def test_processing_failures_name_the_constraint_they_violate(run, scenario):
    """Verified deliveries the handler fails on (a constraint violation): not the endpoint, not the secret. The
    findings say what the failures share, the error normalised and the constraint, and the tables show it whole."""
    scenario("webhook-processing-fails")
    paid = recent_subscribers()
    with psycopg.connect(sandbox_dsn()) as conn:
        errors = [e for (e,) in conn.execute("SELECT error FROM stripe_events WHERE status = 'failed' "
                                             "AND received_at > now() - interval '10 minutes'")]
    assert len(errors) == 3 and all(f"Key (user_id)=({u}) already exists" in " ".join(errors) for u in paid)
    result = run(WEBHOOKS)
    assert result.proc.returncode == 2
    assert result.codes["WEBHOOK_ENDPOINT_OK"] == "OK", "the endpoint answers and verifies signatures"
    unprocessed = finding(result, "WEBHOOK_EVENTS_UNPROCESSED")
    assert unprocessed["severity"] == "CRITICAL" and "subscription_tiers_user_id_key" in unprocessed["title"]
    assert unprocessed["evidence"]["constraint"] == "subscription_tiers_user_id_key"
    assert unprocessed["evidence"]["dominant_error"] == DUPLICATE_PLAN
    assert unprocessed["evidence"]["by_error"] == {f"failed: {DUPLICATE_PLAN}": 3}, "one pattern, not one per user"
    assert set(unprocessed["evidence"]["users"]) == paid
    rate = finding(result, "WEBHOOK_SUCCESS_RATE_LOW")
    assert rate["evidence"]["constraint"] == "subscription_tiers_user_id_key" and DUPLICATE_PLAN in rate["title"]
    assert result.verdict["summary"].startswith("CRITICAL: WEBHOOK_EVENTS_UNPROCESSED")
    assert "subscription_tiers_user_id_key" in result.verdict["summary"], "the page names the constraint"
    shown = table_text(result)
    assert DUPLICATE_PLAN in shown, "the tables group by the normalised error"
    assert any(" ".join(e.split()) in shown for e in errors), "and show an error whole, not cut at 50 characters"


def test_reconcile_round_trip_dry_run_apply_audit_and_zero_mismatch(run, scenario):
    scenario("webhook-secret-mismatch")
    paid = recent_subscribers()
    before = rows_of(paid)
    dry = run(WEBHOOKS, "-p", "signature_probe=false")
    assert dry.codes["SUBSCRIPTION_MISMATCH"] == "CRITICAL"
    assert rows_of(paid) == before, "a dry run changes nothing"
    assert not (dry.output / "audit.jsonl").exists()

    one = sorted(paid)[0]               # user=X with apply: X's subscription only, not every mismatch of the window
    others = paid - {one}
    mine = run(WEBHOOKS, "-p", "signature_probe=false", "-p", f"user={before[one][0]}", "-p", "apply=true",
               "--operator", "alice")
    assert mine.codes["SUBSCRIPTION_MISMATCH"] == "CRITICAL", "the window's diagnosis is unchanged"
    assert mine.codes["SUBSCRIPTIONS_RECONCILED"] == "OK", mine.verdict["findings"]
    assert rows_of({one})[one][1:] == ("pro", "active")
    assert {u: rows_of(others)[u] for u in others} == {u: before[u] for u in others}, "the others are untouched"
    started, finished = audit_records(mine)
    assert len(started["criteria"]["subscriptions"]) == 1 and [t["user_id"] for t in started["targets"]] == [one]
    assert finished["reconciled"] == 1

    applied = run(WEBHOOKS, "-p", "signature_probe=false", "-p", "apply=true", "--operator", "alice",
                  "--incident", "INC-42")
    assert applied.codes["SUBSCRIPTIONS_RECONCILED"] == "OK", applied.verdict["findings"]
    assert {(tier, status) for _, tier, status in rows_of(paid).values()} == {("pro", "active")}
    records = audit_records(applied)[2:]
    assert [r["phase"] for r in records] == ["started", "finished"]
    assert {r["operator"] for r in records} == {"alice"} and {r["incident"] for r in records} == {"INC-42"}
    assert sorted(records[0]["criteria"]["subscriptions"]) == sorted(t["subscription"] for t in records[1]["targets"])
    assert records[1]["reconciled"] == 2 and records[1]["failed"] == 0

    again = run(WEBHOOKS, "-p", "signature_probe=false", "-p", "apply=true", "--operator", "alice")
    assert [(r["phase"], r["reason"].startswith("no subscription differs from Stripe"))
            for r in audit_records(again)[4:]] == [("no-op", True)], "a repeated apply is a no-op that says so"

    after = run(WEBHOOKS, "-p", "signature_probe=false")
    assert after.codes["SUBSCRIPTIONS_MATCH"] == "OK" and "SUBSCRIPTION_MISMATCH" not in after.codes
    secrets = sandbox_env()
    real = {k: secrets[k] for k in ("AIAS_SANDBOX_STRIPE_SECRET_KEY", "AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET",
                                    "AIAS_SANDBOX_ADMIN_TOKEN")}
    for result in (dry, applied, after):
        assert not leaks(real, result.output, result.proc.stdout, result.proc.stderr)
