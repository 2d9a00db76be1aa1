"""Stripe, read-only: events, subscriptions and failed payments as frames, for the billing runbooks.

Talks to real Stripe or to the sandbox's localstripe through the stripe SDK, without retries, its requests sent
by sources.http (DeadlineClient): each has a total deadline of timeout_s, so a Stripe answering a byte at a time
is STRIPE_UNREACHABLE naming it, and the run section's budget bounds a series of requests (pages). Requests are
pinned to STRIPE_VERSION, the last API version whose invoices still carry charge, payment_intent and subscription
and whose subscriptions carry current_period_end; event payloads keep the version they were created with, so both
shapes are read. What the API at hand cannot report (localstripe has no delivery status, no webhook endpoints)
comes back as a one-line reason instead of a frame.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import stripe

from . import http

DEFAULT_API_BASE = "https://api.stripe.com"
STRIPE_VERSION = "2025-02-24.acacia"
PAGE = 100
EVENT_COLUMNS = ["id", "type", "created", "object_id", "customer", "subscription", "user_id", "pending_webhooks"]
SUBSCRIPTION_COLUMNS = ["id", "customer", "user_id", "status", "tier", "plan_id", "created", "current_period_end"]
FAILED_PAYMENT_COLUMNS = ["invoice", "customer", "subscription", "user_id", "email", "amount_due", "currency",
                          "attempt_count", "failed_at", "reason"]
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                "xaf", "xof", "xpf"}
KEY_PATTERN = re.compile(r"\b(sk|rk|pk)_(test|live)_\w+")
ERRNO_PATTERN = re.compile(r"\[Errno -?\d+\] [^\"')]+")

Row = dict[str, Any]


class StripeUnavailable(Exception):
    """Stripe could not be read: unreachable, auth refused, timed out or failing; one line, never the key."""


class DeadlineClient(stripe.HTTPClient):
    """The stripe SDK's HTTP client (its documented extension point, stripe.HTTPClient) sending through
    sources.http: each request within a total deadline of deadline_s. The SDK's own clients bound each socket
    read only, so a Stripe answering a byte at a time held them forever. A request without an answer is the SDK's
    APIConnectionError, caused by the http error (TooSlow names the URL and the seconds)."""

    name = "aias-runbooks"

    def __init__(self, deadline_s: float) -> None:
        super().__init__()
        self.deadline_s = deadline_s
        self._session = http.Session()

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
                **_: Any) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            answer = self._session.request(method.upper(), url, self.deadline_s, headers, content=post_data)
        except http.Unreachable as exc:
            raise stripe.APIConnectionError(str(exc), should_retry=False) from exc
        return answer.content, answer.status_code, answer.headers

    def close(self) -> None:
        self._session.close()


class StripeClient:
    """A read-only view of one Stripe account (or localstripe), every request within its deadline, never retried."""

    def __init__(self, api_key: str, api_base: str | None = None, timeout_s: float = 10.0) -> None:
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._key = api_key
        self._api = stripe.StripeClient(
            api_key, base_addresses={"api": self.api_base}, stripe_version=STRIPE_VERSION,
            max_network_retries=0, http_client=DeadlineClient(timeout_s))

    def __repr__(self) -> str:
        return f"StripeClient(api_base={self.api_base!r})"

    def ping(self) -> dict:
        """One cheap authenticated GET (/v1/balance): {"ok": True, "latency_ms": ...}, or StripeUnavailable."""
        start = time.perf_counter()
        with self._guarded():
            self._api.v1.balance.retrieve()
        return {"ok": True, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}

    def events(self, since: datetime, types: Iterable[str]) -> pd.DataFrame:
        """Every event of `types` (at most 20) created at or after `since`, oldest first, in one paged list."""
        types = list(dict.fromkeys([types] if isinstance(types, str) else types))
        with self._guarded():
            rows = [_event_row(e) for e in self._list("/v1/events", types=types, created={"gte": _epoch(since)})]
        return _event_frame(rows)

    def undelivered_events(self, since: datetime) -> pd.DataFrame | str:
        """Events since `since` not yet delivered to every webhook endpoint, or why this API cannot say."""
        with self._guarded():
            try:
                rows = [_event_row(e) for e in self._list(
                    "/v1/events", delivery_success=False, created={"gte": _epoch(since)})]
            except stripe.InvalidRequestError as exc:
                if "delivery_success" not in str(exc.user_message or ""):
                    raise
                return _unsupported("delivery_success filter unsupported", exc)
        return _event_frame(rows)

    def webhook_endpoints(self) -> pd.DataFrame | str:
        """The account's webhook endpoints (id, url, status, enabled_events), or why this API cannot list them."""
        with self._guarded():
            try:
                rows = [{k: e.get(k) for k in ("id", "url", "status", "enabled_events")}
                        for e in self._list("/v1/webhook_endpoints")]
            except stripe.StripeError as exc:
                if exc.http_status != 404:
                    raise
                return _unsupported("no /v1/webhook_endpoints", exc)
        return pd.DataFrame(rows, columns=["id", "url", "status", "enabled_events"])

    def subscriptions(self, customers: Iterable[str] | None = None) -> pd.DataFrame:
        """Every subscription, whatever its status, with the tier and plan it is on; with `customers`, only theirs
        (one list call each, instead of paging through the whole account: 150 pages at 15,000 subscriptions)."""
        with self._guarded():
            lists = ([self._list("/v1/subscriptions", status="all")] if customers is None else
                     [self._list("/v1/subscriptions", status="all", customer=c) for c in customers])
            rows = [_subscription_row(s) for listed in lists for s in listed]
        frame = pd.DataFrame(rows, columns=SUBSCRIPTION_COLUMNS)
        return _as_datetimes(frame, ["created", "current_period_end"])

    def customers(self, email: str) -> list[str]:
        """The ids of the customers with this email (Stripe matches it case-sensitively)."""
        with self._guarded():
            return [c["id"] for c in self._list("/v1/customers", email=email)]

    def failed_payments(self, since: datetime, limit: int = 200) -> pd.DataFrame:
        """One row per invoice with a payment failure since `since`: its latest state, payer and decline reason.

        Each invoice, customer and charge (or payment intent) is fetched once, for the `limit` most recent failing
        invoices only, so a decline wave cannot make the run unbounded; attrs["failed_invoices"] counts them all.
        """
        with self._guarded():
            latest = self._latest_failures(since)
            recent = sorted(latest.items(), key=lambda item: item[1], reverse=True)[:limit]
            customers: dict[str, Row] = {}
            rows = [self._failed_payment_row(invoice_id, failed_at, customers) for invoice_id, failed_at in recent]
        frame = pd.DataFrame(rows, columns=FAILED_PAYMENT_COLUMNS).astype({"attempt_count": "Int64"})
        frame = _as_datetimes(frame, ["failed_at"]).sort_values("failed_at", kind="stable", ignore_index=True)
        frame.attrs["failed_invoices"] = len(latest)
        return frame

    def _latest_failures(self, since: datetime) -> dict[str, int]:
        latest: dict[str, int] = {}
        for event in self._list("/v1/events", type="invoice.payment_failed", created={"gte": _epoch(since)}):
            invoice_id = event["data"]["object"]["id"]
            latest[invoice_id] = max(latest.get(invoice_id, 0), event["created"])
        return latest

    def _failed_payment_row(self, invoice_id: str, failed_at: int, customers: dict[str, Row]) -> Row:
        invoice = self._api.v1.invoices.retrieve(invoice_id).to_dict()
        customer_id = _id(invoice.get("customer"))
        if customer_id and customer_id not in customers:
            customers[customer_id] = self._api.v1.customers.retrieve(customer_id).to_dict()
        customer = customers.get(customer_id, {})
        currency = invoice.get("currency") or ""
        divisor = 1 if currency.lower() in ZERO_DECIMAL else 100
        return {"invoice": invoice_id, "customer": customer_id, "subscription": _invoice_subscription(invoice),
                "user_id": (customer.get("metadata") or {}).get("user_id"),
                "email": customer.get("email") or invoice.get("customer_email"),
                "amount_due": (invoice.get("amount_due") or 0) / divisor, "currency": currency,
                "attempt_count": invoice.get("attempt_count"), "failed_at": failed_at,
                "reason": self._decline_reason(invoice)}

    def _decline_reason(self, invoice: Row) -> str:
        """The charge's failure code, else the payment intent's last error code, else "unknown"."""
        charge = invoice.get("charge")
        if isinstance(charge, str):
            charge = self._api.v1.charges.retrieve(charge).to_dict()
        if charge and charge.get("failure_code"):
            return charge["failure_code"]
        intent = invoice.get("payment_intent")
        if isinstance(intent, str):
            intent = self._api.v1.payment_intents.retrieve(intent).to_dict()
        error = (intent or {}).get("last_payment_error") or {}
        return error.get("decline_code") or error.get("code") or "unknown"

    def _list(self, path: str, **params: Any) -> Iterator[Row]:
        """Every object of a list endpoint (e.g. /v1/events) as plain dicts, following pages.

        Read as JSON through the SDK's raw_request: building its objects, then dicts again, for a few thousand
        subscriptions cost more than fetching them (1.2 s of a billing runbook at large scale)."""
        params = {"limit": PAGE, **params}
        while True:
            page = json.loads(self._api.raw_request("get", path, **params).body)
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        try:
            yield
        except stripe.StripeError as exc:
            raise StripeUnavailable(self._describe(exc)) from None

    def _describe(self, exc: stripe.StripeError) -> str:
        """One line naming what went wrong and where, with the key (and anything key-shaped) removed."""
        if isinstance(exc, stripe.APIConnectionError) and isinstance(exc.__cause__, http.TooSlow):
            what, detail = "timed out waiting for", exc.__cause__.reason   # e.g. no complete answer within 10 s
        elif isinstance(exc, stripe.APIConnectionError):
            cause = exc.__cause__
            found = ERRNO_PATTERN.search(str(cause or exc))
            detail = f"{type(exc).__name__}: " + (found.group(0).strip() if found else
                                                  getattr(cause, "kind", type(cause or exc).__name__))
            what = "cannot reach"
        else:
            what = {stripe.AuthenticationError: "auth refused by", stripe.PermissionError: "auth refused by",
                    stripe.RateLimitError: "rate limited by"}.get(type(exc), "error from")
            first_line = str(exc.user_message or "").strip().splitlines()[:1]
            said = first_line[0][:160] if first_line else "no message"
            detail = f"{type(exc).__name__}: HTTP {exc.http_status}: {said}"
        message = f"{what} Stripe API at {self.api_base}: {detail}"
        if self._key:
            message = message.replace(self._key, "[redacted]")
        return KEY_PATTERN.sub(r"\1_\2_[redacted]", message)


def _unsupported(what: str, exc: stripe.StripeError) -> str:
    """Why the API at hand cannot report something; localstripe is named when its answer gives it away."""
    message = str(exc.user_message or "")
    emulator = exc.http_status == 404 or message.startswith("Unexpected ")
    where = " (localstripe emulator)" if emulator else f" (HTTP {exc.http_status}: {message[:120]})"
    return f"not reported by this Stripe API{where}: {what}"


def _epoch(moment: datetime) -> int:
    """Whole seconds for created[gte]: the second `moment` falls in, as Stripe truncates `created` (naive is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return math.floor(moment.timestamp())


def _id(value: Any) -> str | None:
    return value.get("id") if isinstance(value, Mapping) else value


def _invoice_subscription(obj: Row) -> str | None:
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    return _id(obj.get("subscription")) or _id(details.get("subscription"))


def _event_row(event: Row) -> Row:
    obj = event.get("data", {}).get("object", {})
    kind = obj.get("object")
    return {"id": event["id"], "type": event["type"], "created": event["created"], "object_id": obj.get("id"),
            "customer": obj.get("id") if kind == "customer" else _id(obj.get("customer")),
            "subscription": obj.get("id") if kind == "subscription" else _invoice_subscription(obj),
            "user_id": (obj.get("metadata") or {}).get("user_id"),
            "pending_webhooks": event.get("pending_webhooks")}


def _event_frame(rows: list[Row]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS).astype({"pending_webhooks": "Int64"})
    frame = _as_datetimes(frame, ["created"])
    return frame.sort_values("created", kind="stable", ignore_index=True)


def _subscription_row(sub: Row) -> Row:
    items = (sub.get("items") or {}).get("data") or [{}]
    price = items[0].get("price") or {}
    plan = items[0].get("plan") or sub.get("plan") or {}
    tier = ((price.get("metadata") or {}).get("tier") or (plan.get("metadata") or {}).get("tier")
            or price.get("lookup_key"))
    return {"id": sub["id"], "customer": _id(sub.get("customer")),
            "user_id": (sub.get("metadata") or {}).get("user_id"), "status": sub.get("status"), "tier": tier,
            "plan_id": price.get("id") or plan.get("id"), "created": sub.get("created"),
            "current_period_end": sub.get("current_period_end") or items[0].get("current_period_end")}


def _as_datetimes(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Epoch-second columns as tz-aware UTC datetimes (also on an empty frame)."""
    for column in columns:
        frame[column] = pd.to_datetime(pd.to_numeric(frame[column]), unit="s", utc=True)
    return frame
