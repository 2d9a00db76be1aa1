"""User cannot sign up: the signup success rate, rate limits, Supabase Auth, and the welcome email (Resend)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import patterns
from ..findings import Finding, Measure, Severity

EXAMPLES = 10
BAD_EVENTS = ("bounced", "complained", "failed")


def judged(attempts: pd.DataFrame) -> pd.DataFrame:
    """The attempts the platform answers for: successes, 429s and 5xx (a user's own 4xx mistake is not judged)."""
    if attempts.empty:
        return attempts
    return attempts[(attempts["status"] < 400) | (attempts["status"] == 429) | (attempts["status"] >= 500)]


def success_rate(attempts: pd.DataFrame, thresholds: dict[str, Any], window_minutes: int) -> list[Finding]:
    """SIGNUP_SUCCESS_RATE_LOW: successful signups among the judged attempts, against 95 % (and 80 %)."""
    if attempts.attrs.get("error"):
        return []
    rule = thresholds["signup_success_rate"]
    counted = judged(attempts)
    total, ok = int(counted["attempts"].sum()) if len(counted) else 0, 0
    if total:
        ok = int(counted.loc[counted["status"] < 400, "attempts"].sum())
    measured = [Measure("success_rate", 100 * ok / total if total >= rule["min_attempts"] else None, "%",
                        100 * rule["warning"], 100 * rule["critical"], 0, 100, low_is_bad=True),
                Measure("attempts", total, "", minimum=0)]
    if total < rule["min_attempts"]:
        return [Finding("SIGNUP_SUCCESS_RATE_OK", Severity.OK, f"{ok} of {total} signups succeeded in the last "
                        f"{window_minutes} min: too few to judge (fewer than {rule['min_attempts']}).",
                        measures=measured)]
    rate = ok / total
    evidence = {"attempts": total, "succeeded": ok, "success_rate_pct": round(100 * rate, 1),
                "target_pct": 100 * rule["warning"],
                "failures": {f"HTTP {int(s)}": int(n) for s, n in
                             counted[counted["status"] >= 400].groupby("status")["attempts"].sum().items()}}
    if rate >= rule["warning"]:
        return [Finding("SIGNUP_SUCCESS_RATE_OK", Severity.OK,
                        f"{100 * rate:.1f}% of {total} signups succeeded in the last {window_minutes} min.", evidence,
                        measures=measured)]
    severity = Severity.CRITICAL if rate < rule["critical"] else Severity.WARNING
    worst = max(evidence["failures"].items(), key=lambda kv: kv[1])
    top = patterns.dominant(failures_by_reason(counted), "attempts")
    evidence |= {"dominant_error": top["pattern"] or None, "dominant_error_example": top["example"] or None}
    return [Finding("SIGNUP_SUCCESS_RATE_LOW", severity,
                    f"Only {100 * rate:.1f}% of {total} signups succeeded in the last {window_minutes} min "
                    f"(target > {100 * rule['warning']:.0f}%); most failures: {worst[0]} ({worst[1]})"
                    + (f", the most common error: {top['pattern']}." if top["pattern"] else "."), evidence,
                    ["The failures by reason below say which: 429 is the rate limiter (section 2), 503 Supabase "
                     "Auth (section 3), other 5xx the API (run high-error-rate)."], measured)]


def failures_by_reason(attempts: pd.DataFrame) -> pd.DataFrame:
    """Every failed attempt, grouped by status and error pattern (patterns.normalise: one client's "blocked until"
    time is not a reason of its own), most frequent first, each with one whole error as its example."""
    if attempts.empty:
        return attempts
    failed = attempts[attempts["status"] >= 400]
    return patterns.grouped(failed, "error", "attempts", by=["status"], last=["last_at"])


def rate_limited(active: pd.DataFrame) -> list[Finding]:
    """SIGNUP_RATE_LIMITED: the keys blocked right now, each with its end."""
    if active.attrs.get("error"):
        return []
    if active.empty:
        return [Finding("RATE_LIMITS_OK", Severity.OK, "No rate-limit key is blocked.")]
    keys = [f"{r.key} until {pd.Timestamp(r.blocked_until).strftime('%H:%M:%S')} UTC ({r.count} in a minute, "
            f"limit {r.limit})" for r in active.head(EXAMPLES).itertuples(index=False)]
    return [Finding("SIGNUP_RATE_LIMITED", Severity.WARNING,
                    f"{len(active)} rate-limit key(s) blocked: {active.iloc[0]['key']}"
                    + (f" and {len(active) - 1} more." if len(active) > 1 else "."),
                    {"keys": keys},
                    ["A blocked IP shared by many people (an office, a school) locks all of them out: if the "
                     "attempts look legitimate, clear the key (section 6) and consider a higher limit.",
                     "A bot hammering signup should stay blocked: leave it."])]


def auth(health: dict[str, Any] | None, problem: str = "") -> list[Finding]:
    """AUTH_UNHEALTHY when Supabase Auth's /auth/v1/health does not answer 200."""
    if health is None:
        return [Finding("AUTH_NOT_CONFIGURED", Severity.UNKNOWN, f"Supabase Auth was not checked: {problem}")]
    if health["ok"]:
        return [Finding("AUTH_HEALTHY", Severity.OK, f"Supabase Auth answers ({health.get('name')} "
                        f"{health.get('version')}, {health['latency_ms']:.0f} ms).")]
    return [Finding("AUTH_UNHEALTHY", Severity.CRITICAL, "Supabase Auth is not healthy: nobody can sign up or log in.",
                    {"error": health["error"]},
                    ["Check Supabase status (section 3's status page) and the project's Auth logs.",
                     "Post a status update: signups and logins fail until Auth is back."])]


def email_domains(domains: pd.DataFrame | None, problem: str = "") -> list[Finding]:
    """EMAIL_DOMAIN_UNVERIFIED when a sending domain is not verified at Resend: every email from it is refused;
    EMAIL_NO_SENDING_DOMAIN when Resend lists none at all (no domain added, or the profile's key is another
    account's): no email can be sent from the platform's address either, but this run cannot tell which."""
    if domains is None:
        return [Finding("EMAIL_NOT_CONFIGURED", Severity.UNKNOWN, f"Resend was not checked: {problem}")]
    if domains.empty:
        return [Finding("EMAIL_NO_SENDING_DOMAIN", Severity.WARNING,
                        "No sending domain at Resend: the account of the profile's API key lists none, so no email "
                        "from the platform's address is sent (welcome emails, password resets), unless the key is "
                        "another account's.", {"domains": 0},
                        ["Resend dashboard > Domains: is the platform's sending domain there? If not, add it, "
                         "publish the DNS records it lists (SPF, DKIM) and Verify.",
                         "If it is there, the profile's resend_api_key belongs to another Resend account: give the "
                         "runbooks a key of the account the platform sends with.",
                         "Run signup-failures again: EMAIL_DELIVERY_FAILING says whether sends are refused now."])]
    bad = domains[domains["status"] != "verified"]
    if bad.empty:
        return [Finding("EMAIL_DOMAIN_VERIFIED", Severity.OK,
                        f"Every sending domain is verified ({', '.join(domains['name'])}).")]
    return [Finding("EMAIL_DOMAIN_UNVERIFIED", Severity.CRITICAL,
                    f"Sending domain {bad.iloc[0]['name']} is {bad.iloc[0]['status']} at Resend: no email from it "
                    f"is sent (welcome emails, password resets).",
                    {"domains": {r.name: r.status for r in bad.itertuples(index=False)}},
                    ["Resend dashboard > Domains > the domain: restore the DNS records it lists (SPF, DKIM), then "
                     "Verify.", "Signups still succeed meanwhile; tell support that no email goes out."])]


def email_delivery(errors: pd.DataFrame, emails: pd.DataFrame | None, thresholds: dict[str, Any],
                   window_minutes: int) -> list[Finding]:
    """EMAIL_DELIVERY_FAILING: the app's sends refused or failing (naming the error they share), or recent emails
    bouncing, named by recipient domain: one domain holding most bounces is that company's mail server rejecting
    ours; bounces spread over many domains are our sending reputation or DNS. Each calls for different steps."""
    rule = thresholds["email_delivery"]
    failed = int(errors["errors"].sum()) if len(errors) else 0
    recent = emails if emails is not None else pd.DataFrame(columns=["to", "last_event"])
    bounced = int(recent["last_event"].isin(BAD_EVENTS).sum())
    share = bounced / len(recent) if len(recent) else 0.0
    domains = bounce_domains(recent)
    evidence = {"send_failures": failed, "recent_emails": len(recent), "bounced_or_complained": bounced,
                "bounced_by_domain": dict(list(domains.items())[:EXAMPLES])}
    measured = [Measure("send_failures", failed, "", 0, rule["failures_critical"], 0),
                Measure("bounce_share", 100 * share, "%", 100 * rule["bounce_warning"], None, 0, 100)]
    if failed == 0 and share <= rule["bounce_warning"]:
        return [Finding("EMAIL_DELIVERY_OK", Severity.OK, f"No email failed to send in the last {window_minutes} "
                        f"min; {bounced} of {len(recent)} recent emails bounced.", evidence, measures=measured)]
    if failed:
        top = patterns.dominant(send_failures(errors), "errors")
        severity = Severity.CRITICAL if failed >= rule["failures_critical"] else Severity.WARNING
        return [Finding("EMAIL_DELIVERY_FAILING", severity,
                        f"{failed} emails failed to send in the last {window_minutes} min: {top['example']}",
                        evidence | {"dominant_error": top["pattern"]},
                        ["Fix the cause named (an unverified domain, an invalid API key), then re-send the welcome "
                         "emails of the users who signed up meanwhile."], measured)]
    said, more, steps = _bounce_cause(domains, rule)
    return [Finding("EMAIL_DELIVERY_FAILING", Severity.WARNING,
                    f"{100 * share:.0f}% of recent emails bounced ({bounced} of {len(recent)}); {said}",
                    evidence | more, steps, measured)]


def bounce_domains(emails: pd.DataFrame) -> dict[str, int]:
    """{recipient domain: bounced emails to it}, most first, from Resend's emails (`to`, `last_event`)."""
    if emails.empty:
        return {}
    bounced = emails.loc[emails["last_event"] == "bounced", "to"]
    domains = pd.Series([_domain(a) for to in bounced for a in ([to] if isinstance(to, str) else list(to or []))],
                        dtype=object)
    return {str(d): int(n) for d, n in domains.value_counts().items()}


def _domain(address: str) -> str:
    """The domain of an address, bare or "Name <a@b>"."""
    return str(address).rsplit("@", 1)[-1].strip(" >").lower()


def _bounce_cause(domains: dict[str, int], rule: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """Whose mail servers refuse ours, as a title clause, evidence and the steps it calls for."""
    total = sum(domains.values())
    if total < rule["bounce_domain_min"]:
        return (f"{total} bounce(s): too few to tell one recipient's mail server from our sending.",
                {"bounce_pattern": "few"},
                ["Resend dashboard > Emails > each bounced one: the receiving server's answer says why (an unknown "
                 "mailbox is the user's typo; a policy block is theirs or ours)."])
    domain, n = next(iter(domains.items()))
    if n / total >= rule["bounce_domain_share"]:
        return (f"{n} of the {total} bounces are to one recipient domain, {domain}: its mail server rejects our mail.",
                {"bounce_pattern": "one domain", "domain": domain, "domain_share_pct": round(100 * n / total, 1)},
                [f"Not our sending: {domain}'s mail server refuses our mail. Resend dashboard > Emails > a bounced one "
                 "to it: its SMTP answer says why (policy, blocklist, unknown mailbox).",
                 f"Tell that customer (their IT): allow our sending domain in their mail filter (allowlist it); "
                 f"then re-send the welcome emails of their people who signed up ({n} bounced)."])
    return (f"they are spread over {len(domains)} recipient domains (the most, {domain}: {n} of {total}): our "
            "sending reputation or DNS, not one recipient.",
            {"bounce_pattern": "spread", "domains": len(domains)},
            ["Resend dashboard > Domains > the sending domain: its SPF, DKIM (and DMARC) records must still verify "
             "(a DNS change breaks them for every recipient).",
             "Resend dashboard > Emails > the bounces' SMTP answers: a blocklisted sender or spam policy is our "
             "sending reputation (a bulk send to old or bought addresses causes it): pause bulk sends until fixed.",
             "Once mail is accepted again, re-send the welcome emails of the users who signed up meanwhile."])


def send_failures(errors: pd.DataFrame) -> pd.DataFrame:
    """The app's failed sends (the email_errors query) grouped by error pattern, each with one whole message."""
    return patterns.grouped(errors, "message", "errors", last=["last_at"])
