"""Full System Check: system_down's subsystem table with rows added for the database pool, query performance,
the 5xx rate since the live deployment, Stripe webhook delivery and Resend email delivery; each row judged by
the existing checks' findings, says what was seen and, when not up, the runbook to run next; SYSTEM_CHECK sums
it up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import catalogue
from ..findings import Finding, Severity
from . import connections, errors, signups, system_down, webhooks
from .triage import command

COLUMNS = ["subsystem", "status", "detail", "run next", "took_ms"]
STATUS = {Severity.OK: "up", Severity.UNKNOWN: "unknown", Severity.WARNING: "degraded", Severity.CRITICAL: "down"}
ORDER = ["API", "Database", "Database pool", "Database queries", "Vercel deployment", "Vercel error rate",
         "Supabase Auth", "Stripe webhooks", "Resend email"]   # then the status pages
# The runbook that diagnoses each subsystem: the owner (in the catalogue) of the code that judges it; a core
# subsystem that is down is an emergency (incident-system-down), as a provider's status page is.
JUDGED_BY = {"API": "API_DOWN", "Database": "DB_UNREACHABLE", "Database pool": "DB_POOL_SATURATED",
             "Database queries": "DB_SLOW_QUERY", "Vercel deployment": "DEPLOYS_UNKNOWN",
             "Vercel error rate": "ERROR_RATE_HIGH", "Supabase Auth": "AUTH_UNHEALTHY",
             "Stripe webhooks": "WEBHOOK_SUCCESS_RATE_LOW", "Resend email": "EMAIL_DELIVERY_FAILING"}
RUNBOOK = {row: catalogue.finding(code).owner for row, code in JUDGED_BY.items()}
STATUS_PAGE_RUNBOOK = catalogue.finding("EXTERNAL_STATUS_DEGRADED").triage
# Findings recorded elsewhere (opening the connection, reading Stripe) that say what a row's checks could not.
RECORDED = {"Database pool": ("DB_POOL_SATURATED",), "Stripe webhooks": ("STRIPE_UNREACHABLE", "STRIPE_NOT_CONFIGURED")}
TOOK = {"Stripe webhooks": "stripe", "Resend email": "resend"}   # the probe whose time a row shows


@dataclass
class Seen:
    """The added rows' findings (row -> findings) and the frames they were judged on, shown under each section."""

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)   # row -> why it was not judged

    def all(self) -> list[Finding]:
        return [f for found in self.findings.values() for f in found]


def judge(answered: dict[str, Any], db: dict[str, Any], events: pd.DataFrame | None, received: pd.DataFrame,
          thresholds: dict[str, Any], window_minutes: int, leak_min_idle_s: int) -> Seen:
    """The existing checks on what was read: the pool (DB_POOL_*, DB_CONNECTION_LEAK / DB_NO_LEAKS), query
    performance (DB_QUERIES_OK, DB_SLOW_QUERY*, DB_SLOW_QUERY_UNKNOWN), the 5xx rate and the deployments
    (ERROR_RATE_*, ERROR_SPIKE_AFTER_DEPLOY / NO_DEPLOY_SPIKE), webhook delivery (WEBHOOK_EVENTS_*,
    WEBHOOK_SUCCESS_RATE_*) and email (EMAIL_DOMAIN_*, EMAIL_DELIVERY_*, EMAIL_NOT_CONFIGURED)."""
    seen = Seen()
    leaks = connections.leaks(db["leaked"], db["limits"], thresholds, leak_min_idle_s)
    seen.findings["Database pool"] = connections.pool_usage(db["limits"], db["by_state"], thresholds, leaks) + leaks
    seen.frames["pool"] = db["by_state"]
    seen.problems["Database pool"] = _error(db["limits"], db["by_state"], db["leaked"])

    seen.findings["Database queries"] = connections.slow_queries(db["pgss"], db["statements"], thresholds)
    recent = db["statements"]
    seen.frames["statements"] = (connections.statement_causes(recent, thresholds)
                                 if recent is not None and not recent.error else None)
    seen.problems["Database queries"] = _error(db["pgss"]) or getattr(recent, "error", None) or ""

    minutes = errors.per_minute(db["requests"], thresholds)
    deployments = answered["vercel"][0]   # None when not read: system_down's DEPLOYS_UNKNOWN says why
    found = errors.error_rate(minutes, thresholds, window_minutes)
    if deployments is not None and not minutes.attrs.get("error"):
        seen.frames["deploys"] = errors.around_deploys(minutes, deployments, thresholds)
        found = errors.deploy_spike(seen.frames["deploys"], thresholds) + found
    seen.findings["Vercel error rate"] = found
    seen.frames["since_live"] = since_live(minutes, deployments)
    seen.problems["Vercel error rate"] = _error(db["requests"])

    deliveries = webhooks.delivery(events, received, thresholds)
    seen.findings["Stripe webhooks"] = (webhooks.unprocessed(deliveries, window_minutes)
                                        + webhooks.success_rate(deliveries, thresholds, window_minutes))
    seen.frames["deliveries"], seen.frames["webhook_log"] = deliveries, db["webhook_log"]
    seen.problems["Stripe webhooks"] = _error(received) if events is not None else ""

    resend = answered["resend"]
    domains, emails, why = resend.result if resend.result is not None else (None, None, resend.error)
    sends = db["email_errors"]   # the app's failed sends: not judged when they could not be read
    seen.findings["Resend email"] = signups.email_domains(domains, why) + (
        [] if sends.attrs.get("error") else signups.email_delivery(sends, emails, thresholds, window_minutes))
    seen.frames["domains"], seen.frames["email_errors"] = domains, sends
    return seen


def _error(*frames: pd.DataFrame) -> str:
    return next((f.attrs["error"] for f in frames if f.attrs.get("error")), "")


def since_live(minutes: pd.DataFrame, deployments: pd.DataFrame | None) -> dict[str, Any] | None:
    """The live production deployment and the 5xx rate of the requests since it went live (within the window)."""
    live = deployments[deployments["live"]] if deployments is not None else pd.DataFrame()
    if live.empty or minutes.attrs.get("error"):
        return None
    d = live.iloc[0]
    live_at = d["ready"] if pd.notna(d["ready"]) else d["created"]
    if pd.isna(live_at):
        return None
    after = minutes[minutes["minute"] >= live_at.floor("min")] if len(minutes) else minutes
    requests = int(after["requests"].sum()) if len(after) else 0
    failed = int(after["errors"].sum()) if len(after) else 0
    return {"deployment": d["id"], "state": d["state"], "live_at": live_at, "requests": requests, "errors": failed,
            "rate": failed / requests if requests else None,
            "before_window": bool(len(minutes)) and live_at < minutes["minute"].min()}


def table(answered: dict[str, Any], ping: pd.DataFrame, seen: Seen, recorded: list[Finding],
          environment: str) -> pd.DataFrame:
    """system_down's rows (API, Database, Vercel deployment, Supabase Auth, status pages) and the added ones, each
    up / degraded / down / unknown with what was seen and, when not up, the command of the runbook to run next."""
    base = system_down.subsystems(answered, ping, recorded)
    took = answered.get("took_ms", {})
    added = []
    for name, found in seen.findings.items():
        found = found or [f for f in recorded if f.code in RECORDED.get(name, ())]
        added.append(_row(name, found, seen.problems.get(name, ""), _said(name, seen))
                     | {"took_ms": took.get(TOOK.get(name, ""))})
    rows = pd.concat([base, pd.DataFrame(added)], ignore_index=True)
    position = {name: i for i, name in enumerate(ORDER)}
    rows = rows.sort_values("subsystem", key=lambda s: s.map(lambda n: position.get(n, len(ORDER))),
                            kind="stable", ignore_index=True)
    rows["run next"] = [command(next_runbook(r.subsystem, r.status), environment) if r.status != "up" else ""
                        for r in rows.itertuples(index=False)]
    return rows[COLUMNS]


def _row(subsystem: str, found: list[Finding], problem: str, said: str) -> dict[str, Any]:
    """Up / degraded / down / unknown as the worst of the row's findings; its detail what was seen, then the
    findings' titles (the problems' only, when there are any)."""
    if not found:
        return {"subsystem": subsystem, "status": "unknown",
                "detail": "; ".join(filter(None, [said, f"not checked: {problem or 'nothing was read'}"]))}
    worst = max(found, key=lambda f: f.severity.rank)
    shown = [f for f in found if f.severity is not Severity.OK] or found
    titles = " ".join(f.title for f in shown)
    return {"subsystem": subsystem, "status": STATUS[worst.severity], "detail": f"{said}; {titles}" if said else titles}


def _said(row: str, seen: Seen) -> str:
    """What a row's findings' titles do not say: the live deployment's 5xx rate, the webhook endpoint's answers."""
    if row == "Vercel error rate" and (live := seen.frames.get("since_live")):
        said = f"{live['deployment']} live since {live['live_at']:%Y-%m-%d %H:%M} UTC"
        if live["before_window"]:
            return f"{said} (before the window)"
        rate = "no request logged" if live["rate"] is None else (
            f"{100 * live['rate']:.2f}% of {live['requests']} requests answered 5xx")
        return f"{said}: {rate} since then"
    if row == "Stripe webhooks":
        log = seen.frames.get("webhook_log")
        if log is None or log.attrs.get("error") or log.empty:
            return ""
        by_status = log.groupby("status")["requests"].sum().sort_index()
        answers = ", ".join(f"HTTP {int(status)} x{int(n)}" for status, n in by_status.items())
        return f"the endpoint answered {int(by_status.sum())} deliveries in the window ({answers})"
    if row == "Resend email" and (problem := _error(seen.frames["email_errors"])):
        return f"the app's failed sends were not read ({problem})"
    return ""


def next_runbook(subsystem: str, status: str) -> str:
    """The runbook for a subsystem that is not up; the emergency procedure when the API or the database is down."""
    if status == "down" and subsystem in system_down.CORE:
        return "incident-system-down"
    return RUNBOOK.get(subsystem, STATUS_PAGE_RUNBOOK)


def summary(table: pd.DataFrame) -> Finding:
    """SYSTEM_CHECK: CRITICAL when a subsystem of the platform is down, WARNING when one is degraded or a
    provider's status page reports an incident; OK when every subsystem checked is up. Names them, with the
    command to run for each, worst first."""
    by_state = system_down.by_status(table)
    evidence = {state: ", ".join(names) or "-" for state, names in by_state.items()} | {
        "subsystems": {r["subsystem"]: {"status": r["status"], "detail": r["detail"], "run_next": r["run next"]}
                       for r in table.to_dict("records")}}
    ours_down = [n for n in by_state["down"] if not n.startswith("Status: ")]
    affected = by_state["down"] + by_state["degraded"]
    steps = [f"{r['subsystem']} ({state}): run `{r['run next']}`" for state in ("down", "degraded", "unknown")
             for r in table[table["status"] == state].to_dict("records")]
    if ours_down:
        others = [n for n in affected if n not in ours_down]
        more = f"; also affected: {', '.join(others)}" if others else ""
        return Finding("SYSTEM_CHECK", Severity.CRITICAL,
                       f"{', '.join(ours_down)} {'is' if len(ours_down) == 1 else 'are'} down{more}.", evidence, steps)
    if affected:
        return Finding("SYSTEM_CHECK", Severity.WARNING,
                       f"{', '.join(affected)} {'is' if len(affected) == 1 else 'are'} degraded or reporting an "
                       "incident; everything else checked is up.", evidence, steps)
    unchecked = f"; not checked: {', '.join(by_state['unknown'])}" if by_state["unknown"] else ""
    return Finding("SYSTEM_CHECK", Severity.OK,
                   f"Every subsystem checked is up ({len(by_state['up'])} of {len(table)}){unchecked}.", evidence,
                   steps)
