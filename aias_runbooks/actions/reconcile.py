"""Guarded action: reconcile subscription_tiers with Stripe through the app's /api/billing/reconcile.

Dry run unless apply: the plan is the subscription diff itself (checks.billing.subscription_diff), each row
showing what the database says and what Stripe says it should. Apply (operator required) asks the endpoint to
reconcile exactly the planned subscriptions; the app sets them from Stripe's objects in one transaction. The
runbook itself never writes to the database. Audited in output/audit.jsonl (started before the call, finished
with each row's outcome, also when the call fails or the run is interrupted; a refused or no-op apply as one
record with the reason).
"""

from __future__ import annotations

import pandas as pd

from ..checks import billing, webhooks
from ..findings import Finding, Severity
from ..runbook import Runbook
from ..sources.http import Unreachable, admin_post
from . import approvals, audit

ACTION = "reconcile_subscriptions"
ENDPOINT = "/api/billing/reconcile"
RECONCILED = "reconciled"
UNCHANGED = "unchanged: Stripe and the database already agree"
FAILED = "failed: "
NOT_ATTEMPTED = "not attempted: "
# What an approval approves (approvals.plan_hash): which user's subscription is set to which tier and status.
IDENTITY = ["kind", "user_id", "subscription", "stripe_tier", "stripe_status"]
INTERRUPTED = "interrupted: outcome unknown (the endpoint may have applied it; read the diff again)"


def plan(rb: Runbook, customers: list[str] | None = None, rows: pd.DataFrame | None = None,
         users: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """The subscription diff between Stripe and subscription_tiers (checks.billing.subscription_diff); None when
    either side could not be read. attrs["checked"]: how many Stripe subscriptions were compared.

    Every subscription of the account, or with `customers` only those customers' and `users`' (by id or email),
    against their rows (`rows`, else read): a few calls where the whole account pages through every subscription
    (150 pages at 15,000). The customers the database gives those users are read too, so a user's other
    subscription is neither missed nor reported missing."""
    subscriptions = _subscriptions(rb, customers)
    if subscriptions is None:
        return None
    if rows is None:
        named = [*billing.user_ids(subscriptions), *users]
        rows = rb.query("subscriptions_billing", user_ids=named)
        if customers is not None and not rows.attrs.get("error"):
            rows = billing.rows_of(rows, customers, named)
    if rows.attrs.get("error"):
        return None
    more = sorted(set(rows["stripe_customer_id"].dropna()) - set(customers)) if customers is not None else []
    if more:
        theirs = _subscriptions(rb, more)
        if theirs is None:
            return None
        subscriptions = pd.concat([subscriptions, theirs], ignore_index=True)
        customers = sorted({*customers, *more})
    diff = billing.subscription_diff(subscriptions, rows, webhooks.settled_before(rb.thresholds))
    diff.attrs.update(checked=len(subscriptions), customers=customers)
    return diff


def plan_for_window(rb: Runbook, events: pd.DataFrame | None, compare: str, window_minutes: int,
                    user: str = "") -> pd.DataFrame | None:
    """compare="window": plan() kept to the customers the window's billing events name, and to `user` (email or
    id); "all": every subscription. A drift older than the window is found by "all" (the nightly schedule)."""
    if compare == "all":
        return plan(rb)
    if events is None:
        return None
    user, customers = user.strip(), billing.customers_named(events)
    if "@" in user:
        by_email = rb.from_stripe(lambda stripe: stripe.customers(user))
        if by_email is None:
            return None
        customers = sorted({*customers, *by_email})
    diff = plan(rb, customers, users=(user,) if user else ())
    if diff is not None:
        diff.attrs["scope"] = f"named by the last {window_minutes} minutes' billing events" + (
            f" or by {user}" if user else "")
        diff.attrs["user"] = user      # run() and verify() act on this user's rows only
    return diff


def plan_for_user(rb: Runbook, user_id: str, email: str | None, rows: pd.DataFrame) -> pd.DataFrame | None:
    """plan() kept to one user: the Stripe customers on their subscription_tiers rows and any with their email,
    against those rows."""
    if rows.attrs.get("error"):
        return None
    mine = rows[rows["user_id"].astype(str) == str(user_id)]
    by_email = rb.from_stripe(lambda stripe: stripe.customers(email)) if email else []
    if by_email is None:
        return None
    diff = plan(rb, sorted(set(by_email)), mine)
    if diff is not None:
        diff.attrs.update(scope="of this user", user=str(user_id))
    return diff


def verify(rb: Runbook, applied: bool, diff: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """After an apply: both sides read again, over what `diff` compared (and only its user's rows when it was kept
    to one, as run() was); SUBSCRIPTIONS_RECONCILED when they agree, else RECONCILE_INCOMPLETE with what still
    differs. Nothing to check after a dry run."""
    if not applied:
        return None
    customers = None if diff is None else diff.attrs.get("customers")
    user = "" if diff is None else diff.attrs.get("user") or ""
    after = plan(rb, customers, users=(user,) if user else ())
    if after is None:
        return None
    after = billing.one_user(after, user)
    after.attrs["scope"] = diff.attrs.get("scope") if diff is not None else None
    if after.empty:
        rb.record(Finding("SUBSCRIPTIONS_RECONCILED", Severity.OK,
                          f"After reconcile all {billing.compared(after)} agree with the database."))
    else:
        rb.record(Finding("RECONCILE_INCOMPLETE", Severity.WARNING,
                          f"{len(after)} subscriptions still differ after reconcile.",
                          {"by_kind": after["kind"].value_counts().to_dict()},
                          ["Read the app's log of the reconcile; re-run this runbook in a minute."]))
    return after


def _subscriptions(rb: Runbook, customers: list[str] | None) -> pd.DataFrame | None:
    return rb.from_stripe(lambda stripe: stripe.subscriptions(customers))


def run(rb: Runbook, diff: pd.DataFrame | None, apply: bool, operator: str, timeout_s: float = 30.0,
        approval: str = "") -> pd.DataFrame:
    """Dry run: the diff, marked with what would change (an approval request filed when the profile requires one).
    Apply: once approvals.gate lets it (`approval`: the approved request's id), the endpoint reconciles those
    subscriptions; returns the rows with `action` (reconciled / unchanged / failed: ...). A diff kept to one user
    (attrs["user"], plan_for_window's `user`, plan_for_user) is applied to that user's rows only. An apply with no
    comparison (refused) or no difference (a no-op) is audited with its reason."""
    if diff is not None and diff.attrs.get("user"):
        diff = billing.one_user(diff, diff.attrs["user"])
    if not apply and diff is not None and not diff.empty:
        approvals.gate(rb, ACTION, _records(diff), False, operator, approval, identity=IDENTITY)
    if not apply:
        return diff if diff is None or diff.empty else diff.assign(
            action=[f"dry run: would set {r.stripe_tier or r.db_tier}/{r.stripe_status}"
                    for r in diff.itertuples(index=False)])
    audit.require_operator(operator)
    if diff is None:
        audit.declined(rb, ACTION, operator, audit.REFUSED, "Stripe and the database could not both be read: "
                       "nothing is known to differ")
        return diff
    if diff.empty:
        audit.declined(rb, ACTION, operator, audit.NO_OP, "no subscription differs from Stripe"
                       + (f" ({diff.attrs['scope']})" if diff.attrs.get("scope") else ""))
        return diff
    token = rb.env.secret("admin_token")
    if token is None:
        reason = rb.env.missing_secret_message("admin_token")
        audit.declined(rb, ACTION, operator, audit.REFUSED, reason, targets=_records(diff))
        return diff.assign(action=NOT_ATTEMPTED + reason)
    allowed = approvals.gate(rb, ACTION, _records(diff), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        return diff.assign(action=NOT_ATTEMPTED + "refused: " + allowed.reason)
    linked = {"request": allowed.request} if allowed.request else {}
    targets = diff["subscription"].dropna().tolist()
    criteria = {"subscriptions": targets}
    result = diff.assign(action=INTERRUPTED)       # what the audit says if the call never comes back
    with audit.attempt(rb, ACTION, operator, linked | {"criteria": criteria, "targets": _records(result)},
                       lambda: linked | {"criteria": criteria, "targets": _records(result),
                                "reconciled": int((result["action"] == RECONCILED).sum()),
                                "failed": int(result["action"].str.startswith(FAILED).sum())}) as path:
        result["action"] = _call(rb.env.api_base_url + ENDPOINT, token.reveal(), targets, result, timeout_s)
    result.attrs["audit"] = str(path)
    return result


def _call(url: str, token: str, targets: list[str], diff: pd.DataFrame, timeout_s: float) -> list[str]:
    try:
        answer = admin_post(url, token, {"subscriptions": targets}, timeout_s)
    except Unreachable as exc:
        return [FAILED + str(exc)] * len(diff)
    changed = {c["subscription"] for c in answer.get("changed", [])}
    return [RECONCILED if sub in changed else UNCHANGED for sub in diff["subscription"]]


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
