"""Billing: Stripe's subscriptions against subscription_tiers, failed payments, and whether Stripe answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from ..thresholds import grade

# Stripe's subscription statuses as subscription_tiers spells them; the first three grant the plan.
STATUSES = {"active": "active", "trialing": "trialing", "past_due": "past_due", "unpaid": "past_due",
            "canceled": "canceled", "incomplete": "incomplete", "incomplete_expired": "canceled", "paused": "canceled"}
ENTITLED = ("active", "trialing", "past_due")
PAID_NOT_UPGRADED = "paid, not upgraded"
ACCESS_WITHOUT_PAYMENT = "access without payment"
STATUS_DIFFERS = "status differs"
DIFF_COLUMNS = ["kind", "user_id", "email", "subscription", "customer", "stripe_tier", "stripe_status", "db_tier",
                "db_status"]
EXAMPLES = 20
RECONCILE_STEPS = [
    "Fix why Stripe's changes did not reach the app first (webhook sections above), or they will drift again.",
    "Reconcile (section 5): a dry run lists exactly these rows; apply=True with your name sets them from Stripe.",
    "Tell the affected users once fixed (playbook: Payment Issues, 'Notify affected users').",
]


def stripe_unreachable(reason: str) -> Finding:
    return Finding("STRIPE_UNREACHABLE", Severity.CRITICAL, f"Stripe could not be read: {reason}",
                   {"reason": reason},
                   ["Check Stripe's status (status.stripe.com) and the API key (a restricted read key suffices).",
                    "Everything Stripe-side below is unknown until it answers; the app's own records still show."])


def not_configured(what: str, message: str) -> Finding:
    return Finding("STRIPE_NOT_CONFIGURED", Severity.UNKNOWN, f"{what} was not checked: {message}")


def stripe_answers(ping: dict[str, Any] | None) -> list[Finding]:
    """STRIPE_REACHABLE with the round trip; nothing when it did not answer (STRIPE_UNREACHABLE is recorded)."""
    if ping is None:
        return []
    return [Finding("STRIPE_REACHABLE", Severity.OK, f"Stripe's API answered in {ping['latency_ms']:.0f} ms.", ping)]


def user_ids(stripe_subs: pd.DataFrame | None) -> list[str]:
    """The users Stripe's subscriptions name (metadata.user_id), to fetch their rows even on the free tier."""
    return [] if stripe_subs is None else sorted({str(u) for u in stripe_subs["user_id"].dropna()})


def customers_named(events: pd.DataFrame | None) -> list[str]:
    """The Stripe customers the billing events name: whose subscriptions a window's comparison reads."""
    return [] if events is None else sorted({str(c) for c in events["customer"].dropna()})


def rows_of(db_rows: pd.DataFrame, customers: list[str], users: list[str]) -> pd.DataFrame:
    """The subscription_tiers rows of these Stripe customers and of these users (by id or email, any case)."""
    wanted = {u.strip().lower() for u in users}
    return db_rows[db_rows["stripe_customer_id"].isin(customers) | db_rows["user_id"].astype(str).isin(wanted)
                   | db_rows["email"].fillna("").str.lower().isin(wanted)]


def succeeded(events: pd.DataFrame | None) -> int:
    """Invoice payments that succeeded among the events (Stripe sends invoice.paid and invoice.payment_succeeded)."""
    if events is None or events.empty:
        return 0
    paid = events[events["type"].isin(["invoice.paid", "invoice.payment_succeeded"])]
    return int(paid["object_id"].nunique())


def one_user(frame: pd.DataFrame | None, user: str) -> pd.DataFrame | None:
    """The rows of one user, by email (any case) or id; every row when user is empty."""
    if frame is None or not user.strip():
        return frame
    wanted = user.strip().lower()
    return frame[(frame["email"].fillna("").str.lower() == wanted) | (frame["user_id"].astype(str) == wanted)]


def to_notify(failed: pd.DataFrame | None, diff: pd.DataFrame | None) -> pd.DataFrame:
    """Everyone to tell: whose payment failed (update the card), who paid without getting the plan (fixed)."""
    rows = []
    if failed is not None:
        rows += [{"email": r.email, "user_id": r.user_id, "why": f"payment failed: {r.reason}",
                  "amount": f"{r.amount_due:.2f} {str(r.currency).upper()}", "since": r.failed_at}
                 for r in failed.itertuples(index=False)]
    if diff is not None:
        rows += [{"email": r.email, "user_id": r.user_id, "why": "paid, plan not active: tell them once reconciled",
                  "amount": None, "since": None}
                 for r in diff[diff["kind"] == PAID_NOT_UPGRADED].itertuples(index=False)]
    return pd.DataFrame(rows, columns=["email", "user_id", "why", "amount", "since"])


def subscription_diff(stripe_subs: pd.DataFrame, db_rows: pd.DataFrame, settled_before: datetime) -> pd.DataFrame:
    """Rows where the database disagrees with Stripe, one per user, with what each side says.

    Each user's current Stripe subscription (one granting a plan, else the newest) is compared with their
    subscription_tiers row; a row granting a plan through a subscription Stripe does not have is listed too.
    Subscriptions created after settled_before may still be on their way: not judged.
    """
    subs = stripe_subs[stripe_subs["created"] <= settled_before].assign(
        stripe_status=lambda f: f["status"].map(STATUSES).fillna("incomplete"))
    subs = subs.assign(key=subs["user_id"].fillna(subs["customer"]),
                       granting=subs["stripe_status"].isin(ENTITLED)).sort_values(["granting", "created"])
    current = subs.drop_duplicates("key", keep="last")
    index = _by_key(db_rows)
    rows = [_compare(sub, _row_of(index, sub)) for sub in current.itertuples(index=False)]
    known = set(stripe_subs["id"])
    orphans = db_rows[db_rows["stripe_subscription_id"].notna() & ~db_rows["stripe_subscription_id"].isin(known)
                      & db_rows["status"].isin(ENTITLED) & (db_rows["tier"] != "free")]
    rows += [{"kind": ACCESS_WITHOUT_PAYMENT, "user_id": r.user_id, "email": r.email,
              "subscription": r.stripe_subscription_id, "customer": r.stripe_customer_id, "stripe_tier": None,
              "stripe_status": "missing in Stripe", "db_tier": r.tier, "db_status": r.status}
             for r in orphans.itertuples(index=False)]
    return pd.DataFrame([r for r in rows if r], columns=DIFF_COLUMNS)


MATCH_BY = ("stripe_subscription_id", "user_id", "stripe_customer_id")   # a subscription's row: the first that matches


def _by_key(db_rows: pd.DataFrame) -> list[dict[Any, Any]]:
    """For each MATCH_BY column, its values to their first row: one pass, not a scan per subscription (1,485
    subscriptions against as many rows took 1.2 s)."""
    rows = list(db_rows.itertuples(index=False))
    return [{getattr(r, column): r for r in reversed(rows) if not pd.isna(getattr(r, column))} for column in MATCH_BY]


def _row_of(index: list[dict[Any, Any]], sub: Any) -> Any:
    for by_value, value in zip(index, (sub.id, sub.user_id, sub.customer), strict=True):
        if value is not None and not pd.isna(value) and value in by_value:
            return by_value[value]
    return None


def _compare(sub: Any, row: Any) -> dict[str, Any] | None:
    db_tier, db_status = (row.tier, row.status) if row is not None else (None, "no row")
    if (db_tier, db_status) == (sub.tier, sub.stripe_status):
        return None
    granted = row is not None and db_status in ENTITLED and db_tier != "free"
    if sub.granting and (not granted or db_tier != sub.tier):
        kind = PAID_NOT_UPGRADED
    elif not sub.granting and granted:
        kind = ACCESS_WITHOUT_PAYMENT
    else:
        kind = STATUS_DIFFERS
    return {"kind": kind, "user_id": row.user_id if row is not None else sub.user_id,
            "email": row.email if row is not None else None, "subscription": sub.id, "customer": sub.customer,
            "stripe_tier": sub.tier, "stripe_status": sub.stripe_status, "db_tier": db_tier, "db_status": db_status}


def mismatch(diff: pd.DataFrame | None) -> list[Finding]:
    """SUBSCRIPTION_MISMATCH: CRITICAL when someone paid and did not get the plan, WARNING for the other kinds;
    nothing when either side could not be read (their findings say why)."""
    if diff is None:
        return []
    if diff.empty:
        title = (f"All {compared(diff)} agree with subscription_tiers." if diff.attrs.get("checked") else
                 f"No subscription to compare: {compared(diff)} (compare=all compares every one).")
        return [Finding("SUBSCRIPTIONS_MATCH", Severity.OK, title, {"compared": compared(diff)})]
    counts = diff["kind"].value_counts().to_dict()
    unpaid_for = diff[diff["kind"] == PAID_NOT_UPGRADED]
    severity = Severity.CRITICAL if len(unpaid_for) else Severity.WARNING
    title = (f"{len(unpaid_for)} users paid in Stripe and were not upgraded" if len(unpaid_for)
             else f"{len(diff)} subscriptions differ between Stripe and the database")
    others = len(diff) - len(unpaid_for)
    more = f" (+{others} other differences)." if others and len(unpaid_for) else "."
    users = [f"{r.email or r.user_id} ({r.kind})" for r in diff.head(EXAMPLES).itertuples(index=False)]
    return [Finding("SUBSCRIPTION_MISMATCH", severity, title + more,
                    {"by_kind": counts, "compared": compared(diff), "users": users}, RECONCILE_STEPS)]


def compared(diff: pd.DataFrame) -> str:
    """What a diff compared, in words: "136 Stripe subscriptions", or those of the customers it was kept to."""
    checked, customers = diff.attrs.get("checked", 0), diff.attrs.get("customers")
    if customers is None:
        return f"{checked} Stripe subscriptions"
    return f"{checked} Stripe subscription(s) of {len(customers)} customer(s) {diff.attrs.get('scope') or ''}".rstrip()


def payments(failed: pd.DataFrame | None, succeeded: int, thresholds: dict[str, Any],
             window_minutes: int) -> list[Finding]:
    """PAYMENTS_FAILING: failed invoice payments against all payment attempts in the window."""
    if failed is None:
        return []
    limits = thresholds["payment_failure_rate"]
    count = failed.attrs.get("failed_invoices", len(failed))     # all of them; the frame details the latest
    attempts = count + succeeded
    if count == 0:
        return [Finding("PAYMENTS_OK", Severity.OK,
                        f"No failed payment in the last {window_minutes} min ({succeeded} succeeded).")]
    share = count / attempts
    severity = grade(share, limits["warning"], limits["critical"])
    if severity is Severity.CRITICAL and count < limits["critical_min_failures"]:
        severity = Severity.WARNING
    severity = max(severity, Severity.WARNING, key=lambda s: s.rank)
    reasons = failed["reason"].value_counts().to_dict()
    return [Finding("PAYMENTS_FAILING", severity,
                    f"{count} of {attempts} payment attempts failed in the last {window_minutes} min "
                    f"({', '.join(f'{k}: {v}' for k, v in reasons.items())}).",
                    {"failed": count, "attempts": attempts, "failure_pct": round(100 * share, 1),
                     "by_reason": reasons, "reasons_of_latest": len(failed),
                     "users": sorted({str(e) for e in failed["email"].dropna()})[:EXAMPLES]},
                    ["Check Stripe's status first: a decline wave across card brands can be Stripe's or the bank's.",
                     "Tell the affected users (section 4) to update their card; Stripe retries per the Smart Retries "
                     "settings, and their subscriptions are past due meanwhile.",
                     "Reconcile (section 5) if their plan in the database does not show past due."],
                    [Measure("failure_rate", 100 * share, "%", 100 * limits["warning"], 100 * limits["critical"], 0,
                             100),
                     Measure("failed", count, "", critical=limits["critical_min_failures"], minimum=0)])]
