"""Stripe webhooks: were Stripe's events processed by the app, and does the endpoint verify signatures?"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from .. import patterns
from ..findings import Finding, Measure, Severity
from ..sources import http
from ..thresholds import grade

# What billing acts on (playbook: users not upgraded after payment); localstripe sends invoice.payment_succeeded
# where Stripe sends both it and invoice.paid.
BILLING_EVENTS = ["checkout.session.completed", "customer.subscription.created", "customer.subscription.updated",
                  "customer.subscription.deleted", "invoice.paid", "invoice.payment_succeeded",
                  "invoice.payment_failed"]
HANDLED = ("processed", "ignored")
ENDPOINT = "/api/stripe/webhook"
PROBE_TYPE = "aias.webhook_probe"      # a type the app does not act on: it answers 2xx and records it as ignored
EXAMPLES = 20

DELIVERY_STEPS = [
    "Check the endpoint is reachable and verifies signatures (the probe above): most failed deliveries are a wrong "
    "STRIPE_WEBHOOK_SECRET or a broken /api/stripe/webhook.",
    "Fix the cause first, then reconcile (section 5) so every affected user gets the plan they paid for.",
    "Stripe retries failed deliveries for 3 days; resend single events from the Stripe Dashboard "
    "(Developers > Webhooks > the endpoint > the event > Resend) once the endpoint is fixed.",
]


def settled_before(thresholds: dict[str, Any]) -> datetime:
    """Events created after this may still be on their way to the app: not judged yet."""
    return datetime.now(timezone.utc) - timedelta(seconds=thresholds["webhook_failure_rate"]["in_flight_s"])


def ids(events: pd.DataFrame | None) -> list[str]:
    return [] if events is None else events["id"].tolist()


def delivery(events: pd.DataFrame | None, app_events: pd.DataFrame, thresholds: dict[str, Any]) -> pd.DataFrame | None:
    """One row per Stripe event old enough to judge, with what the app recorded of it (status, error); None when
    Stripe could not be read (STRIPE_UNREACHABLE says so), or the app's records could not (DB findings say so)."""
    if events is None or app_events.attrs.get("error"):
        return None
    settled = events[events["created"] <= settled_before(thresholds)]
    recorded = app_events.set_index("id")[["status", "error", "received_at"]] if len(app_events) else None
    frame = settled.join(recorded, on="id") if recorded is not None else settled.assign(status=None, error=None,
                                                                                          received_at=None)
    frame["status"] = frame["status"].fillna("not received")
    frame["handled"] = frame["status"].isin(HANDLED)
    return frame.reset_index(drop=True)


def unprocessed(frame: pd.DataFrame | None, window_minutes: int) -> list[Finding]:
    """WEBHOOK_EVENTS_UNPROCESSED: events Stripe has that the app never processed (CRITICAL: users wait on them),
    naming what most of them have in common (the app's error, normalised; the constraint it violates)."""
    if frame is None:
        return []
    missing = frame[~frame["handled"]]
    if missing.empty:
        return [Finding("WEBHOOK_EVENTS_PROCESSED", Severity.OK, f"Every billing event of the last {window_minutes} "
                        f"min ({len(frame)}) was processed by the app.")]
    said, cause, steps = _cause(failures(frame))
    by_status = missing["status"].value_counts().to_dict()
    return [Finding("WEBHOOK_EVENTS_UNPROCESSED", Severity.CRITICAL,
                   f"{len(missing)} of {len(frame)} billing events of the last {window_minutes} min were not "
                   f"processed by the app; {said}.",
                   {"by_app_status": by_status, **cause, "event_types": missing["type"].value_counts().to_dict(),
                    "users": _users(missing), "first": str(missing["created"].min()),
                    "examples": missing["id"].head(EXAMPLES).tolist()}, steps)]


def success_rate(frame: pd.DataFrame | None, thresholds: dict[str, Any], window_minutes: int) -> list[Finding]:
    """WEBHOOK_SUCCESS_RATE_LOW against the playbook: success > 99 % (WARNING below), failures > 5 % alert; with
    what the failures have in common when the frame says (its status and error columns)."""
    limits = thresholds["webhook_failure_rate"]
    if frame is None:
        return []
    if frame.empty:
        return [Finding("WEBHOOK_SUCCESS_RATE_OK", Severity.OK,
                        f"No billing events in the last {window_minutes} min: nothing to deliver.",
                        measures=_rate_measures(None, 0, limits))]
    failed = int((~frame["handled"]).sum())
    share = failed / len(frame)
    measured = _rate_measures(share, len(frame), limits)
    severity = grade(share, limits["warning"], limits["critical"])
    evidence = {"events": len(frame), "failed": failed, "success_rate_pct": round(100 * (1 - share), 2),
                "target_pct": round(100 * (1 - limits["warning"]), 2), "alert_failure_pct": 100 * limits["critical"]}
    if severity is Severity.OK:
        return [Finding("WEBHOOK_SUCCESS_RATE_OK", Severity.OK,
                        f"Webhook success rate {100 * (1 - share):.1f}% over {len(frame)} events.", evidence,
                        measures=measured)]
    said, cause, steps = _cause(failures(frame))
    return [Finding("WEBHOOK_SUCCESS_RATE_LOW", severity,
                    f"Webhook success rate {100 * (1 - share):.1f}% ({failed} of {len(frame)} events failed) in the "
                    f"last {window_minutes} min; target > 99 %, alert above 5 % failures; {said}.", evidence | cause,
                    steps, measured)]


def _rate_measures(share: float | None, events: int, limits: dict[str, Any]) -> list[Measure]:
    """The failed share of the window's events against the 1 % target and the 5 % alert, and the event count."""
    return [Measure("failure_rate", None if share is None else 100 * share, "%", 100 * limits["warning"],
                    100 * limits["critical"], 0, 100), Measure("events", events, "", minimum=0)]


def failures(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The deliveries that failed, grouped by what they have in common: the app's status of the event (failed,
    received, not received; or the endpoint's HTTP status) and its error, normalised (patterns.normalise), largest
    group first, each with one whole error as its example."""
    frame = pd.DataFrame(columns=["handled"]) if frame is None else frame
    missing = frame[~frame["handled"].astype(bool)].assign(events=1)
    missing = missing.assign(**{c: v for c, v in {"status": "unknown", "error": None, "created": pd.NaT}.items()
                                if c not in missing})
    return patterns.grouped(missing, "error", "events", by=["status"], last=["created"])


_STATUS_SAID = {"failed": "failed", "received": "are stuck in 'received'",
                "not received": "never reached the app's records (refused or not delivered: see the endpoint's log)"}


def _cause(causes: pd.DataFrame) -> tuple[str, dict[str, Any], list[str]]:
    """What most failed deliveries have in common, as a title clause, evidence and the next steps it calls for."""
    top = patterns.dominant(causes, "events")
    if not top:
        return "no failure is recorded", {}, DELIVERY_STEPS
    status = causes.iloc[0]["status"]
    evidence = {"by_error": {f"{r.status}: {r.pattern}" if r.pattern else str(r.status): int(r.events)
                             for r in causes.head(EXAMPLES).itertuples(index=False)},
                "dominant_error": top["pattern"] or None, "dominant_error_example": top["example"] or None,
                **({"constraint": top["constraint"]} if "constraint" in top else {})}
    some = f"{top['count']} of them" if top["count"] < top["of"] else f"all {top['count']}"
    did = _STATUS_SAID.get(status, f"answered {status}")
    if "constraint" in top:
        return (f"{some} failed on the database constraint {top['constraint']}: {top['pattern']}", evidence,
                [f"The webhook handler's write violates the constraint {top['constraint']} (the app's error, whole, "
                 "is in the evidence and the table of failures): fix the statement that writes it (the latest "
                 "deployment of /api/stripe/webhook) - the endpoint and its signature check work.",
                 *DELIVERY_STEPS[1:]])
    if top["pattern"]:
        return (f"{some} {did}: {top['pattern']}", evidence,
                ["The webhook handler fails on verified events with the error named (whole in the evidence): fix "
                 "it (the latest deployment of /api/stripe/webhook's handler).", *DELIVERY_STEPS[1:]])
    return f"{some} {did}", evidence, DELIVERY_STEPS


def endpoint_log(requests: pd.DataFrame) -> pd.DataFrame:
    """The endpoint's own log (the webhook_requests query) grouped by HTTP status and normalised error, each with one
    whole error as its example."""
    return patterns.grouped(requests, "error", "requests", by=["status"], first=["first_at"], last=["last_at"])


PROBE_REQUEST_ID = "aias-probe-"   # the X-Request-Id prefix of the probe's deliveries, as api_requests logs it


def probe(api_base_url: str, secret: str, timeout_s: float = 5.0) -> pd.DataFrame:
    """POST a correctly signed test event and an unsigned one to the endpoint: one row each, with the answer
    (each within a total deadline of timeout_s).

    The signed one uses the documented scheme (Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body">), an
    event type the app ignores, and an id naming the probe; the app answers 2xx and records it as ignored. Both
    carry an X-Request-Id starting PROBE_REQUEST_ID, which the app logs: the delivery statistics leave them out.
    """
    url = api_base_url.rstrip("/") + ENDPOINT
    body = json.dumps({"id": f"evt_aias_probe_{secrets.token_hex(8)}", "object": "event", "type": PROBE_TYPE,
                       "created": int(time.time()), "livemode": False, "api_version": None,
                       "data": {"object": {"object": "aias_probe"}}})
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    rows = []
    # marked, so the webhook success rate (monitoring, triage, the endpoint's log) leaves our own refused probe out
    marked = {"X-Request-Id": f"{PROBE_REQUEST_ID}{secrets.token_hex(8)}"}
    with http.Session() as session:
        for kind, headers in (("signed", {"Stripe-Signature": f"t={stamp},v1={signature}"} | marked),
                              ("unsigned", marked)):
            rows.append({"delivery": kind, "expected": "2xx" if kind == "signed" else "4xx"}
                        | _post(session, url, body, headers, timeout_s))
    frame = pd.DataFrame(rows)
    frame.attrs["url"] = url
    return frame


def _post(session: http.Session, url: str, body: str, headers: dict[str, str], timeout_s: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        response = session.request("POST", url, timeout_s, {"Content-Type": "application/json"} | headers,
                                   content=body)
    except http.Unreachable as exc:
        return {"status": None, "latency_ms": round((time.perf_counter() - start) * 1000, 1),
                "answer": str(exc)[:200]}
    return {"status": response.status_code, "latency_ms": round((time.perf_counter() - start) * 1000, 1),
            "answer": response.text[:200]}


def signature(probes: pd.DataFrame) -> Finding:
    """WEBHOOK_ENDPOINT_UNREACHABLE (no answer or 5xx), WEBHOOK_SIGNATURE_REJECTED (a correctly signed event is
    refused), WEBHOOK_SIGNATURE_NOT_VERIFIED (an unsigned one is accepted), else WEBHOOK_ENDPOINT_OK."""
    url = probes.attrs.get("url", ENDPOINT)
    rows = probes.set_index("delivery")
    signed, unsigned = rows.loc["signed"], rows.loc["unsigned"]
    evidence = {"url": url, "signed": _said(signed), "unsigned": _said(unsigned)}
    down = [r for r in (signed, unsigned) if pd.isna(r["status"]) or r["status"] >= 500]
    if down:
        return Finding("WEBHOOK_ENDPOINT_UNREACHABLE", Severity.CRITICAL,
                       f"The webhook endpoint does not work: {_said(down[0])}.", evidence,
                       ["Check the endpoint is accessible (playbook): the latest deployment, the function logs of "
                        "/api/stripe/webhook (its errors are in the endpoint's log, section 3).",
                        "Stripe keeps retrying for 3 days: once it answers, deliveries resume; then reconcile."])
    if not 200 <= signed["status"] < 300:
        return Finding("WEBHOOK_SIGNATURE_REJECTED", Severity.CRITICAL,
                       "The endpoint refuses an event signed with the configured webhook secret: the app's "
                       "STRIPE_WEBHOOK_SECRET is not the endpoint's signing secret in Stripe.", evidence,
                       ["Copy the signing secret from Stripe (Developers > Webhooks > the endpoint > Signing secret) "
                        "into the app's STRIPE_WEBHOOK_SECRET (Vercel environment variables) and redeploy.",
                        "Then reconcile (section 5): the events refused meanwhile upgraded nobody."])
    if 200 <= unsigned["status"] < 300:
        return Finding("WEBHOOK_SIGNATURE_NOT_VERIFIED", Severity.CRITICAL,
                       "The endpoint accepts an unsigned event: anyone can forge billing events.", evidence,
                       ["Verify every delivery with stripe.Webhook.construct_event before acting on it."])
    return Finding("WEBHOOK_ENDPOINT_OK", Severity.OK,
                   "The endpoint accepts a correctly signed event and refuses an unsigned one.", evidence)


def _said(row: pd.Series) -> str:
    return f"no answer ({row['answer']})" if pd.isna(row["status"]) else f"HTTP {int(row['status'])}"


def _users(frame: pd.DataFrame) -> list[str]:
    return sorted({str(u) for u in frame["user_id"].dropna()})[:EXAMPLES]
