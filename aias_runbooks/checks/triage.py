"""Triage: the problems quick signals show, ranked by how likely each is the cause of what users see, each with
the runbook that diagnoses and fixes it and the exact command to run it.

The ranking is severity first (CRITICAL, then WARNING, then UNKNOWN), then cause before symptom: a saturated
database pool explains an API that answers 503, a failing webhook endpoint explains users not upgraded, so the
runbook that owns the cause comes first (CAUSE_ORDER).
"""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd

from .. import catalogue
from ..findings import Finding, Severity
from . import webhooks, workflows

LEAK_MIN_IDLE_S = 10   # idle in transaction this long is a leak: database-connection-errors' default

# Which runbook diagnoses (and fixes) what each finding names, and the cause-before-symptom order of those
# runbooks within one severity: both read from the catalogue (each code's `triage`, its `cause_order`).
NEXT = catalogue.next_runbooks()
CAUSE_ORDER = catalogue.cause_order()
COLUMNS = ["rank", "severity", "run next", "because", "findings", "command"]


def command(runbook: str, environment: str) -> str:
    """The exact command line that runs `runbook` on `environment`."""
    return shlex.join(["aias-runbooks", "run", runbook, "--env", environment])


def webhook_answers(requests: pd.DataFrame, thresholds: dict[str, Any], window_minutes: int) -> list[Finding]:
    """WEBHOOK_SUCCESS_RATE_LOW judged on the endpoint's own answers (api_requests): each delivery it answered
    with a 2xx was handled. The same rule as stripe-webhook-failures, without asking Stripe."""
    if requests.attrs.get("error"):
        return []
    each = requests.loc[requests.index.repeat(requests["requests"].astype(int))]
    found = webhooks.success_rate(pd.DataFrame({"handled": (each["status"] < 300).to_numpy(dtype=bool),
                                                "status": [f"HTTP {int(s)}" for s in each["status"]],
                                                "error": each["error"].replace("", None).to_numpy()}),
                                  thresholds, window_minutes)
    for finding in found:
        finding.evidence["source"] = "the webhook endpoint's answers (api_requests), not Stripe's delivery log"
    return found


def integrations(calls: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """EXTERNAL_API_DOWN (mostly failing) or EXTERNAL_API_SLOW (mostly timing out) from the integrations' recent
    executions alone: triage calls no external API (the workflows runbook probes each)."""
    return [f for f in workflows.external_apis(calls, None, thresholds) if f.code != "INTEGRATIONS_NOT_PROBED"]


def payment_events(events: pd.DataFrame, window_minutes: int) -> list[Finding]:
    """PAYMENTS_FAILING (WARNING) when Stripe told the app of failed invoice payments in the window; the payment
    runbook judges the share and lists the users."""
    if events.attrs.get("error") or events.empty:
        return []
    failed = int(events.loc[events["type"] == "invoice.payment_failed", "events"].sum())
    paid = int(events.loc[events["type"] == "invoice.paid", "events"].sum())
    if not failed:
        return []
    return [Finding("PAYMENTS_FAILING", Severity.WARNING,
                    f"Stripe reported {failed} failed invoice payment(s) in the last {window_minutes} min "
                    f"({paid} paid).", {"failed": failed, "paid": paid, "source": "stripe_events"},
                    ["Run incident-payment-issues: decline reasons, the users to notify, reconcile."])]


def ordered(found: list[Finding]) -> list[tuple[Finding, str]]:
    """The problems among `found` (not OK) with the runbook for each, most likely cause first."""
    problems = [(f, NEXT.get(f.code, "")) for f in found if f.severity is not Severity.OK]
    last = len(CAUSE_ORDER)
    return sorted(problems, key=lambda p: (-p[0].severity.rank,
                                           CAUSE_ORDER.index(p[1]) if p[1] in CAUSE_ORDER else last))


def rank(found: list[Finding], environment: str) -> pd.DataFrame:
    """Where to look first: one row per runbook to run, most likely cause first, with the findings that point
    to it (the worst one's words) and its command line."""
    rows: dict[str, dict[str, Any]] = {}
    for f, runbook in ordered(found):
        row = rows.setdefault(runbook or f.code, {
            "severity": f.severity.value, "run next": runbook or "-", "because": f.title, "findings": [],
            "command": command(runbook, environment) if runbook else ""})
        row["findings"].append(f.code)
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS[1:])
    frame["findings"] = frame["findings"].map(", ".join)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def ranked(found: list[Finding], environment: str, recorded: list[Finding] = ()) -> list[Finding]:
    """The problems of `found` in rank order, ranked together with those already `recorded` (a connection that
    failed at the start); each problem gains its rank and runbook (evidence) and its command (first next step).
    TRIAGE_ALL_CLEAR (OK) when nothing is wrong at all."""
    problems = ordered([*recorded, *found])
    if not problems:
        return [Finding("TRIAGE_ALL_CLEAR", Severity.OK,
                        "No quick signal shows a problem: every subsystem answers and no rule is breached.",
                        {"signals": len(found)},
                        ["If users still report a problem, run the runbook for their symptom (see the list above)."])]
    for n, (f, runbook) in enumerate(problems, 1):
        # new containers: a check may share its steps list between findings (a module constant)
        f.evidence = {**f.evidence, "rank": n, "next_runbook": runbook or None}
        if runbook:
            f.next_steps = [f"Run next: `{command(runbook, environment)}`", *f.next_steps]
    return [f for f, _ in problems if not any(f is r for r in recorded)]
