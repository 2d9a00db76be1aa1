"""System Down: every subsystem's state in one table, one summarising finding, the last hour as a timeline of
events, and a drafted status-page update naming the affected components (and nothing internal)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ..findings import Finding, Severity
from . import connections, errors, health, signups

COLUMNS = ["subsystem", "status", "detail", "took_ms"]
CORE = ("API", "Database")          # down means the platform is down for everyone
DB_CODES = ("DB_UNREACHABLE", "DB_POOL_SATURATED", "DB_NOT_CONFIGURED", "DB_POOLER_FULL",
            # the server answered and refused the runbook's own connection: its status is unknown, not down
            "DB_STARTUP_PARAMETER_REFUSED", "DB_LOGIN_REFUSED", "DB_UNKNOWN_DATABASE", "DB_GUARD_MISSING")
# What users see of each subsystem, as a status page names its components: no host, no vendor-internal name.
COMPONENTS = {"API": "Web app and API", "Database": "Web app and API", "Vercel deployment": "Web app and API",
              "Supabase Auth": "Sign-up and login", "Status: supabase": "Web app and API",
              "Status: vercel": "Web app and API", "Status: stripe": "Billing and payments",
              "Status: resend": "Email notifications"}
PAGE_STATE = {"none": "up", "minor": "degraded", "maintenance": "degraded", "major": "down", "critical": "down"}
STEPS_IDENTIFIED = ("The issue has been identified: one of our infrastructure providers reports an incident, and "
                    "we are working with them to restore service.")


def findings(answered: dict[str, Any], db: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """The existing checks' findings on what every subsystem answered: API_DOWN / API_UNHEALTHY / API_HEALTHY,
    DB_PING_FAILED (DB_UNREACHABLE is recorded when the connection fails), DEPLOYS_UNKNOWN when Vercel could not
    be read, AUTH_*, EXTERNAL_STATUS_*."""
    found = health.availability(answered["api"], thresholds)
    if not db.empty:
        found += connections.ping_failures(db, thresholds)
    deployments, problem = answered["vercel"]
    if deployments is None:
        found += errors.deploys_unknown(problem)
    found += signups.auth(*answered["auth"])
    found += errors.external(answered["status_pages"])
    return found


def subsystems(answered: dict[str, Any], db: pd.DataFrame, recorded: Iterable[Finding]) -> pd.DataFrame:
    """One row per subsystem: up, degraded, down or unknown (not checked / no answer), with what it said."""
    took = answered.get("took_ms", {})
    rows = [_api_row(answered["api"], took), _db_row(db, recorded),
            _vercel_row(*answered["vercel"], took.get("vercel")),
            _auth_row(*answered["auth"], took.get("auth"))]
    for page in answered["status_pages"].itertuples(index=False):
        state = "unknown" if page.error else PAGE_STATE.get(page.indicator, "degraded")
        detail = (f"unreadable: {page.error}" if page.error else
                  f"{page.description}" + (f"; incidents: {page.incidents}" if page.incidents else "")
                  + (f"; degraded: {page.degraded_components}" if page.degraded_components else ""))
        rows.append({"subsystem": f"Status: {page.service}", "status": state, "detail": detail,
                     "took_ms": took.get(f"status:{page.service}")})
    return pd.DataFrame(rows, columns=COLUMNS)


def _api_row(samples: pd.DataFrame, took: dict[str, float | None]) -> dict[str, Any]:
    answered, ok = int(samples["answered"].sum()), int(samples["ok"].sum())
    if ok == len(samples):
        state, detail = "up", f"{ok} of {len(samples)} health checks answered ok"
    elif answered == 0:
        state, detail = "down", f"no answer to {len(samples)} health checks: {samples['error'].iloc[-1]}"
    else:
        state = "down" if ok == 0 else "degraded"
        statuses = ", ".join(sorted({str(s) for s in samples.loc[~samples["ok"], "status"].dropna()}))
        detail = f"{ok} of {len(samples)} health checks ok; failing ones answered HTTP {statuses or '-'}"
    times = [t for k, t in took.items() if k.startswith("api#") and t is not None]
    return {"subsystem": "API", "status": state, "detail": detail, "took_ms": max(times) if times else None}


def _db_row(db: pd.DataFrame, recorded: Iterable[Finding]) -> dict[str, Any]:
    problem = next((f for f in recorded if f.code in DB_CODES), None)
    if problem is not None:
        state = "unknown" if problem.severity is Severity.UNKNOWN else "down"
        return {"subsystem": "Database", "status": state, "detail": f"{problem.code}: {problem.title}",
                "took_ms": None}
    if db.empty or not db["answered"].any():
        error = db["error"].dropna().iloc[0] if not db.empty and db["error"].notna().any() else "no round trip"
        return {"subsystem": "Database", "status": "down", "detail": f"SELECT 1 failed: {error}", "took_ms": None}
    good = db[db["answered"]]
    state = "up" if len(good) == len(db) else "degraded"
    return {"subsystem": "Database", "status": state,
            "detail": f"{len(good)} of {len(db)} SELECT 1 round trips answered", "took_ms": good["latency_ms"].max()}


def _vercel_row(deployments: pd.DataFrame | None, problem: str, took: float | None) -> dict[str, Any]:
    if deployments is None:
        return {"subsystem": "Vercel deployment", "status": "unknown", "detail": f"not read: {problem}",
                "took_ms": took}
    live = deployments[deployments["live"]]
    newest = deployments.iloc[0] if len(deployments) else None
    if live.empty:
        return {"subsystem": "Vercel deployment", "status": "degraded",
                "detail": "no production deployment is marked live", "took_ms": took}
    row = live.iloc[0]
    state = "up" if row["state"] == "READY" else "down"
    detail = f"production serves {row['id']} ({row['state']}, live since {_when(row['ready'])})"
    if newest is not None and newest["id"] != row["id"]:
        detail += f"; newest production deployment {newest['id']} is {newest['state']}"
    return {"subsystem": "Vercel deployment", "status": state, "detail": detail, "took_ms": took}


def _auth_row(result: dict | None, problem: str, took: float | None) -> dict[str, Any]:
    if result is None:
        return {"subsystem": "Supabase Auth", "status": "unknown", "detail": f"not checked: {problem}", "took_ms": took}
    if result["ok"]:
        return {"subsystem": "Supabase Auth", "status": "up", "detail": "/auth/v1/health answers", "took_ms": took}
    return {"subsystem": "Supabase Auth", "status": "down", "detail": result["error"], "took_ms": took}


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if pd.notna(value) else "unknown"


def by_status(table: pd.DataFrame) -> dict[str, list[str]]:
    """The subsystems in each state (down, degraded, unknown, up), in the table's order."""
    return {state: table.loc[table["status"] == state, "subsystem"].tolist()
            for state in ("down", "degraded", "unknown", "up")}


def summary(table: pd.DataFrame) -> Finding:
    """SYSTEM_DOWN: CRITICAL when the API or the database is down, WARNING when another subsystem is down or
    degraded (a partial outage); SYSTEM_UP when everything checked is up. Names the subsystems either way."""
    by_state = by_status(table)
    evidence = {state: ", ".join(names) or "-" for state, names in by_state.items()}
    core_down = [name for name in CORE if name in by_state["down"]]
    if core_down:
        said = " and ".join("the API" if n == "API" else "the database" for n in core_down)
        others = [n for n in by_state["down"] + by_state["degraded"] if n not in core_down]
        more = f" (also affected: {', '.join(others)})" if others else ""
        return Finding("SYSTEM_DOWN", Severity.CRITICAL,
                       f"The system is down: {said} "
                       f"{'is' if len(core_down) == 1 else 'are'} not working{more}.",
                       evidence, [*health.SYSTEM_DOWN_STEPS,
                                  "Post the drafted status update (section 4) once you have read it."])
    affected = by_state["down"] + by_state["degraded"]
    if affected:
        return Finding("SYSTEM_DOWN", Severity.WARNING,
                       f"Partial outage: the API and database answer, but {', '.join(affected)} "
                       f"{'is' if len(affected) == 1 else 'are'} down or degraded.", evidence,
                       ["Read each affected subsystem's finding above; post the drafted status update if users "
                        "are affected."])
    unchecked = f"; not checked: {', '.join(by_state['unknown'])}" if by_state["unknown"] else ""
    return Finding("SYSTEM_UP", Severity.OK,
                   f"Every subsystem checked is up ({len(by_state['up'])} of {len(table)}){unchecked}.", evidence)


def timeline(requests: pd.DataFrame, logs: pd.DataFrame, window_minutes: int,
             now: datetime | None = None) -> pd.DataFrame:
    """Per minute of the window: requests, 5xx answers (api_requests) and error_logs rows; minutes without any
    are zeros, so an API that stopped logging shows as a drop, not as a gap the chart bridges."""
    end = pd.Timestamp(now or datetime.now(timezone.utc)).floor("min")
    minutes = pd.date_range(end - pd.Timedelta(minutes=window_minutes - 1), end, freq="min", name="minute")
    frame = pd.DataFrame(index=minutes)
    for source, columns in ((requests, {"requests": "requests", "errors": "errors_5xx"}),
                            (logs, {"error_logs": "error_logs"})):
        for column, name in columns.items():
            if source.empty or column not in source:
                frame[name] = 0
                continue
            series = source.set_index(pd.to_datetime(source["minute"], utc=True))[column].astype(int)
            frame[name] = series.reindex(minutes, fill_value=0)
    frame = frame.reset_index()
    frame.attrs["error"] = requests.attrs.get("error") or logs.attrs.get("error")
    return frame


def events(minutes: pd.DataFrame, deployments: pd.DataFrame | None, table: pd.DataFrame,
           thresholds: dict[str, Any], now: datetime | None = None) -> pd.DataFrame:
    """What happened in the window, oldest first: deployments going live, the start of the longest run of minutes
    over the 5xx alert rate when it lasted the alert's window (high-error-rate's rule), the last minute the API
    logged a request (when it fell silent), and what this check found now."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    rows = []
    start = minutes["minute"].min() if len(minutes) else now
    for d in (deployments if deployments is not None else pd.DataFrame(columns=["ready"])).itertuples(index=False):
        live_at = d.ready if pd.notna(d.ready) else d.created
        if pd.notna(live_at) and start <= live_at <= now:
            rows.append({"at": live_at, "event": "deployment went live",
                         "detail": f"{d.id} ({d.commit}: {d.message}){' - live now' if d.live else ''}"})
    if len(minutes) and not minutes.attrs.get("error"):
        rule = thresholds["error_rate"]
        judged = errors.per_minute(minutes.rename(columns={"errors_5xx": "errors"}), thresholds)
        run, since = errors.longest_run(judged)
        if run >= rule["window_minutes"]:
            rows.append({"at": since, "event": f"5xx rate over {100 * rule['critical']:g}% sustained",
                         "detail": f"{run} consecutive minutes from here"})
        busy = minutes[minutes["requests"] > 0]
        if len(busy) and busy["minute"].iloc[-1] < now.floor("min") - pd.Timedelta(minutes=2):
            rows.append({"at": busy["minute"].iloc[-1], "event": "last request logged by the API",
                         "detail": "no request was logged after this minute"})
        elif busy.empty:
            rows.append({"at": start, "event": "no request logged in the window", "detail": ""})
    bad = table[table["status"].isin(["down", "degraded"])]
    rows.append({"at": now, "event": "this check",
                 "detail": "; ".join(f"{r.subsystem} {r.status}" for r in bad.itertuples(index=False))
                 or "every subsystem checked is up"})
    frame = pd.DataFrame(rows, columns=["at", "event", "detail"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame = frame.sort_values("at", kind="stable", ignore_index=True)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="#")   # the chart's marker numbers
    return frame


def status_update(table: pd.DataFrame, now: datetime | None = None) -> str:
    """A status-page update to review and post, as markdown: Investigating (or Identified, when a provider's own
    status page reports an incident) with the affected components as users know them; no host, deployment,
    error text or secret: only the component names and states in COMPONENTS and fixed wording."""
    now = now or datetime.now(timezone.utc)
    worst: dict[str, str] = {}
    for row in table.itertuples(index=False):
        if row.status not in ("down", "degraded"):
            continue
        component = COMPONENTS.get(row.subsystem, "Web app and API")
        state = "Major outage" if row.status == "down" and row.subsystem in CORE else (
            "Partial outage" if row.status == "down" else "Degraded performance")
        order = ["Degraded performance", "Partial outage", "Major outage"]
        if order.index(state) >= order.index(worst.get(component, "Degraded performance")):
            worst[component] = state
    stamp = f"_Drafted {now:%Y-%m-%d %H:%M} UTC: review before posting._"
    if not worst:
        return "\n\n".join(["**No update needed: all systems operational.**",
                            "Every component checked is working normally.", stamp])
    provider = table[table["subsystem"].str.startswith("Status: ") & table["status"].isin(["down", "degraded"])]
    listed = ", ".join(worst)
    if provider.empty:
        stage, body = "Investigating", (f"We are investigating an issue affecting: {listed}. Some or all users "
                                        "may be affected. We will post an update within 30 minutes.")
    else:
        stage, body = "Identified", (f"An issue is affecting: {listed}. {STEPS_IDENTIFIED} "
                                     "We will post an update within 30 minutes.")
    components = "\n".join(f"- {name}: {state}" for name, state in worst.items())
    return "\n\n".join([f"**{stage}**: {listed}", body, "Affected components:\n\n" + components, stamp])
