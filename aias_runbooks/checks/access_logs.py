"""Emergency: Data Breach, "check access logs": suspicious logins, failed-login bursts and credential misuse.

Inputs are the named queries access_logins (successful logins, with whether the address was new for the user),
access_failed_logins (failed logins: when, from where, the account tried) and access_credential_use (API-key and
service-role use per key and address). Thresholds are params/thresholds.yaml's `access_logs`.

A user's new address alone is not suspicious (people travel, phones change networks): it is reported when one
address is new to many users at once, or when the login follows a failed-login burst from the same address or
against the same account (a likely credential-stuffing success: CRITICAL). Evidence lists user ids, emails, key
ids and addresses only: never a token, a key, or a hash.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Severity, markdown_text

LIST_MAX = 50         # ids listed in a finding's evidence; more are counted


def _max_in_window(times: pd.Series, minutes: int) -> tuple[int, pd.Timestamp | None, pd.Timestamp | None]:
    """The most events in any `minutes`-long window, and that window's first and last event."""
    ordered = sorted(pd.to_datetime(times, utc=True))
    best, start, end, left = 0, None, None, 0
    span = pd.Timedelta(minutes=minutes)
    for right, at in enumerate(ordered):
        while at - ordered[left] > span:
            left += 1
        if right - left + 1 > best:
            best, start, end = right - left + 1, ordered[left], at
    return best, start, end


def failed_bursts(failed: pd.DataFrame, rules: dict[str, Any]) -> pd.DataFrame:
    """Failed-login bursts: `burst_per_ip` failures from one address, or `burst_per_account` against one account,
    within `burst_minutes`. One row per burst: kind (address/account), address or account, failures, first and
    last failure of the busiest window, the accounts tried (address bursts)."""
    columns = ["kind", "ip", "user_id", "email", "failures", "first_at", "last_at", "accounts", "unknown_accounts"]
    rows = []
    if failed.empty:
        return pd.DataFrame(columns=columns)
    minutes = rules["burst_minutes"]
    for ip, group in failed.groupby("ip"):
        count, first, last = _max_in_window(group["created_at"], minutes)
        if count >= rules["burst_per_ip"]:
            inside = group[(pd.to_datetime(group["created_at"], utc=True) >= first)
                           & (pd.to_datetime(group["created_at"], utc=True) <= last)]
            known = inside["user_id"].dropna()
            rows.append({"kind": "address", "ip": ip, "user_id": None, "email": None, "failures": count,
                         "first_at": first, "last_at": last, "accounts": sorted(set(known)),
                         "unknown_accounts": int(inside["user_id"].isna().sum())})
    for user, group in failed.dropna(subset=["user_id"]).groupby("user_id"):
        count, first, last = _max_in_window(group["created_at"], minutes)
        if count >= rules["burst_per_account"]:
            rows.append({"kind": "account", "ip": ", ".join(sorted(set(group["ip"]))), "user_id": user,
                         "email": group["email"].iloc[0], "failures": count, "first_at": first, "last_at": last,
                         "accounts": [user], "unknown_accounts": 0})
    return pd.DataFrame(rows, columns=columns)


def suspicious(logins: pd.DataFrame, bursts: pd.DataFrame, rules: dict[str, Any]) -> pd.DataFrame:
    """The successful logins worth a look, each with its reason and severity:
    after a failed burst from its address or against its account, from an address new to the user (CRITICAL);
    from an address that was new to at least `new_ip_min_users` users in the window (WARNING)."""
    columns = ["created_at", "user_id", "email", "ip", "reason", "severity"]
    if logins.empty:
        return pd.DataFrame(columns=columns)
    span = pd.Timedelta(minutes=rules["burst_minutes"])
    at = pd.to_datetime(logins["created_at"], utc=True)
    unfamiliar = logins["new_ip"].astype(bool) | logins["first_seen"].astype(bool)
    rows = []
    for burst in bursts.itertuples(index=False):
        if burst.kind == "address":
            hit = (logins["ip"] == burst.ip)
            why = f"after {burst.failures} failed logins from {burst.ip}"
        else:
            hit = (logins["user_id"] == burst.user_id)
            why = f"after {burst.failures} failed logins against the account"
        hit &= unfamiliar & (at >= burst.first_at) & (at <= burst.last_at + span)
        rows += [{"created_at": r.created_at, "user_id": r.user_id, "email": r.email, "ip": r.ip,
                  "reason": f"{why}, from an address new to the user", "severity": "CRITICAL"}
                 for r in logins[hit].itertuples(index=False)]
    fresh = logins[logins["new_ip"].astype(bool) & ~logins["first_seen"].astype(bool)]
    users_per_ip = fresh.groupby("ip")["user_id"].nunique()
    for ip in users_per_ip[users_per_ip >= rules["new_ip_min_users"]].index:
        rows += [{"created_at": r.created_at, "user_id": r.user_id, "email": r.email, "ip": r.ip,
                  "reason": f"{ip} was new to {users_per_ip[ip]} users in the window", "severity": "WARNING"}
                 for r in fresh[fresh["ip"] == ip].itertuples(index=False)]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["rank"] = frame["severity"].map({"CRITICAL": 0, "WARNING": 1})
    return (frame.sort_values(["rank", "created_at"]).drop_duplicates(["created_at", "user_id", "ip"])
            .drop(columns="rank").sort_values("created_at").reset_index(drop=True))


def misuse(uses: pd.DataFrame) -> pd.DataFrame:
    """API-key and service-role use worth a look, each with its reason and severity: a revoked key presented
    (CRITICAL), the service-role token from an origin outside the profile's known_origins (CRITICAL), a live key
    from an address neither known nor used by that key in the baseline (WARNING)."""
    columns = ["credential", "api_key_id", "key_name", "tenant_id", "ip", "requests", "refused", "first_at",
               "last_at", "paths", "reason", "severity"]
    if uses.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for r in uses.itertuples(index=False):
        if r.credential == "api_key" and r.after_revoked > 0:
            reason = (f"key revoked at {pd.Timestamp(r.revoked_at):%Y-%m-%d %H:%M} UTC presented {r.after_revoked} "
                      f"time(s) since", "CRITICAL")
        elif r.credential == "service_role" and not r.known_origin:
            reason = ("service-role token used from an origin not in known_origins", "CRITICAL")
        elif r.credential == "api_key" and not r.known_origin and not r.seen_in_baseline and pd.isna(r.revoked_at):
            reason = ("key used from an address it never used before (nor a known origin)", "WARNING")
        else:
            continue
        rows.append({c: getattr(r, c) for c in columns[:10]} | {"reason": reason[0], "severity": reason[1]})
    return pd.DataFrame(rows, columns=columns)


def _ids(values) -> list[str]:
    seen: list[str] = []
    for v in values:
        if isinstance(v, str) and v and v not in seen:
            seen.append(v)
    return seen


def findings(logins: pd.DataFrame, failed: pd.DataFrame, uses: pd.DataFrame, flagged: pd.DataFrame,
             bursts: pd.DataFrame, misused: pd.DataFrame, window_minutes: int) -> list[Finding]:
    """SUSPICIOUS_LOGINS and CREDENTIAL_MISUSE, or ACCESS_LOGS_OK; nothing when a query failed (DB_QUERY_FAILED
    says so)."""
    if any(f.attrs.get("error") for f in (logins, failed, uses)):
        return []
    out: list[Finding] = []
    if not flagged.empty or not bursts.empty:
        critical = (flagged["severity"] == "CRITICAL").any() if not flagged.empty else False
        users = _ids(flagged["user_id"]) if not flagged.empty else []
        emails = _ids(flagged["email"]) if not flagged.empty else []
        targeted = _ids(a for accounts in bursts["accounts"] for a in accounts)
        ips = _ids(list(flagged["ip"] if not flagged.empty else []) + list(bursts.loc[bursts["kind"] == "address",
                                                                                         "ip"]))
        burst_lines = [f"{b.failures} failed logins in {_span(b.first_at, b.last_at)} "
                       + (f"from {b.ip} against {len(b.accounts)} account(s)"
                          + (f" and {b.unknown_accounts} unknown email(s)" if b.unknown_accounts else "")
                          if b.kind == "address" else f"against account {b.user_id} from {b.ip}")
                       for b in bursts.itertuples(index=False)]
        if critical:
            title = (f"{len(users)} account(s) logged in after a failed-login burst, from an address new to them: "
                     f"likely credential stuffing that succeeded.")
        elif users:
            title = f"{len(users)} login(s) from address(es) new to many users at once."
        else:
            title = f"{len(bursts)} failed-login burst(s) in the last {window_minutes} min; none followed by a login."
        out.append(Finding(
            "SUSPICIOUS_LOGINS", Severity.CRITICAL if critical else Severity.WARNING, title,
            {"users": users[:LIST_MAX], "emails": emails[:LIST_MAX], "ips": ips[:LIST_MAX],
             "targeted_users": targeted[:LIST_MAX], "bursts": burst_lines[:LIST_MAX]}
            | ({"more_users": len(users) - LIST_MAX} if len(users) > LIST_MAX else {}),
            ["Revoke the listed users' sessions now (section 4, apply=true) and make them reset their password: "
             "whoever logged in knows it.",
             "Block the listed addresses at the edge (Vercel firewall) while the attack lasts.",
             "Notify the security team; the accounts tried (targeted_users) should change their passwords too."]))
    if not misused.empty:
        critical = (misused["severity"] == "CRITICAL").any()
        keys = _ids(misused["api_key_id"])
        revoked = _ids(misused.loc[misused["reason"].str.startswith("key revoked"), "api_key_id"])
        service = _ids(misused.loc[misused["credential"] == "service_role", "ip"])
        parts = ([f"{len(revoked)} revoked API key(s) used"] if revoked else []) \
            + ([f"the service-role token used from {len(service)} unknown origin(s)"] if service else []) \
            + ([f"{len(set(keys) - set(revoked))} API key(s) used from a new address"] if set(keys) - set(revoked)
               else [])
        out.append(Finding(
            "CREDENTIAL_MISUSE", Severity.CRITICAL if critical else Severity.WARNING,
            "Credential misuse: " + "; ".join(parts) + f" in the last {window_minutes} min.",
            {"api_keys": keys[:LIST_MAX], "revoked_keys_used": revoked[:LIST_MAX],
             "service_role_ips": service[:LIST_MAX], "ips": _ids(misused["ip"])[:LIST_MAX]},
            ["Revoke the listed API keys (section 4, apply=true) and tell their tenants to issue new ones: a "
             "revoked key still being tried means it leaked.",
             "The service-role token leaked if it is used from an unknown origin: rotate it (Supabase: Settings > "
             "API; and the app's admin token) and redeploy; then add real service origins to known_origins.",
             "Notify the security team."]))
    if not out:
        out.append(Finding("ACCESS_LOGS_OK", Severity.OK,
                           f"No suspicious login, failed-login burst or credential misuse in the last "
                           f"{window_minutes} min.",
                           {"logins": len(logins), "failed_logins": len(failed),
                            "new_addresses": int(logins["new_ip"].astype(bool).sum()) if len(logins) else 0,
                            "credential_uses": int(uses["requests"].sum()) if len(uses) else 0}))
    return out


def _span(first, last) -> str:
    seconds = (pd.Timestamp(last) - pd.Timestamp(first)).total_seconds()
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return "–"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return markdown_text(str(value))


def timeline(flagged: pd.DataFrame, bursts: pd.DataFrame, misused: pd.DataFrame,
             actions: list[dict[str, Any]]) -> pd.DataFrame:
    """The suspicious events in time order: bursts, logins after them, credential misuse, and this run's actions."""
    rows = [{"at": b.first_at, "event": f"failed-login burst begins: {b.failures} failures", "who": b.user_id or
             ", ".join(b.accounts[:5]) + (" …" if len(b.accounts) > 5 else ""), "origin": b.ip}
            for b in bursts.itertuples(index=False)]
    rows += [{"at": r.created_at, "event": f"login ({r.reason})", "who": r.user_id, "origin": r.ip}
             for r in flagged.itertuples(index=False)]
    rows += [{"at": r.first_at, "event": f"{r.credential}: {r.reason} ({r.requests} request(s): {r.paths})",
              "who": r.api_key_id if isinstance(r.api_key_id, str) else "service role", "origin": r.ip}
             for r in misused.itertuples(index=False)]
    rows += [{"at": pd.Timestamp(a["at"]), "event": f"{a['action']} {a['phase']} by {a['operator']}",
              "who": a.get("outcome", ""), "origin": "this run"} for a in actions]
    frame = pd.DataFrame(rows, columns=["at", "event", "who", "origin"])
    if frame.empty:
        return frame
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values("at").reset_index(drop=True)


def incident_document(verdict_findings: list[Finding], events: pd.DataFrame, users: pd.DataFrame,
                      keys: pd.DataFrame, actions: list[dict[str, Any]], incident: str | None, run_id: str,
                      window_minutes: int) -> str:
    """The incident document's skeleton in markdown, filled with the evidence: every value a client could set
    (emails, user agents, paths) is escaped; nothing secret is in its inputs (ids, addresses, counts only)."""
    problems = [f for f in verdict_findings if f.code in ("SUSPICIOUS_LOGINS", "CREDENTIAL_MISUSE")]
    lines = [f"# Incident {markdown_text(incident) if incident else '(no incident id yet)'}: suspected data breach",
             "", f"*Drafted by incident-data-breach, run {markdown_text(run_id)}, from the last {window_minutes} "
             "minutes of access logs. Edit before sharing.*", "", "## Summary", ""]
    lines += [f"- **{f.severity.value}** `{f.code}`: {markdown_text(f.title)}" for f in problems] or \
        ["- No suspicious access found in the window."]
    lines += ["", "## Timeline (UTC)", ""]
    if events.empty:
        lines.append("No suspicious event in the window.")
    else:
        lines += ["| time | event | who | from |", "|---|---|---|---|"]
        lines += [f"| {_cell(e.at)} | {_cell(e.event)} | {_cell(e.who)} | {_cell(e.origin)} |"
                  for e in events.itertuples(index=False)]
    lines += ["", "## Affected users", ""]
    if users.empty:
        lines.append("None.")
    else:
        lines += ["| user id | email | sessions now | refresh tokens now | newest session from | client |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {_cell(u.user_id)} | {_cell(u.email)} | {_cell(u.sessions)} | {_cell(u.refresh_tokens)} | "
                  f"{_cell(u.newest_session_ip)} | {_cell(u.newest_session_client)} |"
                  for u in users.itertuples(index=False)]
    lines += ["", "## Affected API keys", ""]
    if keys.empty:
        lines.append("None.")
    else:
        lines += ["| key id | tenant | name | last used | revoked at |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(k.api_key_id)} | {_cell(k.tenant_id)} | {_cell(k.name)} | {_cell(k.last_used_at)} | "
                  f"{_cell(k.revoked_at)} |" for k in keys.itertuples(index=False)]
    lines += ["", "## Actions taken", ""]
    ended = {a.get("attempt") for a in actions if a.get("phase") != "started"}   # finished, refused or no-op
    shown = [a for a in actions if a.get("phase") != "started" or a.get("attempt") not in ended]
    lines += [f"- {_cell(pd.Timestamp(a['at']))} UTC, {_cell(a['operator'])}: {_cell(a['action'])}: "
              + (_cell(a.get("outcome", "")) + (f" ({_cell(a['reason'])})" if a.get("reason") else "")
                 if a.get("phase") != "started"
                 else "started, no outcome recorded (interrupted): read the sessions and keys again")
              for a in shown] or ["- None by this run (dry run). Revoke with `apply=true` and your name."]
    lines += ["", "## Notifications (Operator Playbook: Emergency Procedures, Data Breach)", "",
              "1. Immediately revoke compromised credentials: see *Actions taken*.",
              "2. Notify the security team now, with this document and the report.",
              "3. Check access logs: this run; widen `window_minutes` to find the attack's start.",
              "4. Document the incident: complete this document (cause, data accessed, containment).",
              "5. Notify affected users if required: the users above (and the tenants of the keys), once it is known "
              "what was accessed; where personal information was exposed, privacy law may require telling them and "
              "the regulator within a deadline: ask the privacy lead.", "",
              "## Next steps", "",
              "- Force a password reset for the affected users; block the attacking addresses at the edge.",
              "- Ask the tenants of the affected keys to issue new keys; rotate the service-role token if listed.",
              "- Read what the affected sessions and keys did (api_requests by user and key) to scope data accessed.",
              "- Re-run this runbook in 15 minutes: no new suspicious access should appear."]
    return "\n".join(lines)


def revoke_targets(flagged: pd.DataFrame, misused: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(user ids, API key ids) the findings list: what section 4 revokes."""
    users = _ids(flagged["user_id"]) if not flagged.empty else []
    keys = _ids(misused["api_key_id"]) if not misused.empty else []
    return users, keys
