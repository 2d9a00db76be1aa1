"""User support: one user's account, memberships, subscription and data access, and which escalation level they
need (the playbook's User Support and Support Escalation)."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ..accounts import user_reference
from ..findings import Finding, Severity


def _when(value: Any) -> str:
    if value is None or pd.isna(value):
        return "never"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def account_table(account: pd.DataFrame) -> pd.DataFrame:
    """The account as one column of label: value, for people (dates in UTC, 'never' for none)."""
    if account.empty:
        return account
    row = account.iloc[0]
    banned = row["banned_until"]
    rows = {"user id": row["user_id"], "email": row["email"], "signed up": _when(row["created_at"]),
            "email confirmed": _when(row["email_confirmed_at"]), "last sign-in": _when(row["last_sign_in_at"]),
            "banned until": "not banned" if banned is None or pd.isna(banned) else _when(banned),
            "profile": "present" if row["has_profile"] else "MISSING", "full name": row["full_name"],
            "profile created": _when(row["profile_created_at"])}
    return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="account"))


def find(query: Callable[..., pd.DataFrame], user: str) -> pd.DataFrame:
    """The account named by `user` (an email or a user id: accounts.user_reference), through `query` (Runbook.query);
    no rows, with attrs["malformed"], when `user` is neither (the runner refuses that before a run starts)."""
    try:
        user_id, email = user_reference(user)
    except ValueError as exc:
        frame = pd.DataFrame(columns=["user_id", "email"])
        frame.attrs["malformed"] = str(exc)
        return frame
    return query("user_account", user_id=user_id, email=email)


def user_id_of(found: pd.DataFrame) -> str | None:
    return None if found.empty else str(found.iloc[0]["user_id"])


def account(found: pd.DataFrame, user: str, now: datetime | None = None) -> list[Finding]:
    """USER_NOT_FOUND, or USER_FOUND (OK) with USER_BANNED, EMAIL_NOT_CONFIRMED and PROFILE_MISSING as they apply.
    Nothing when the lookup itself failed (DB_QUERY_FAILED or DB_UNREACHABLE says why)."""
    if found.attrs.get("error"):
        return []
    if found.empty:
        why = f"{user.strip()!r} {found.attrs['malformed']}" if found.attrs.get("malformed") \
            else f"No account has the email or id {user.strip()!r}."
        return [Finding("USER_NOT_FOUND", Severity.WARNING, why,
                        {"looked_up": user.strip()},
                        ["Ask the user which email they signed up with (or for their user id) and run this again.",
                         "Signing up failed? Run signup-failures."])]
    row, now = found.iloc[0], now or datetime.now(timezone.utc)
    findings = [Finding("USER_FOUND", Severity.OK,
                        f"Account {row['email']} found: signed up {_when(row['created_at'])}, last sign-in "
                        f"{_when(row['last_sign_in_at'])}.", {"user_id": row["user_id"]})]
    banned = row["banned_until"]
    if banned is not None and not pd.isna(banned) and pd.Timestamp(banned) > pd.Timestamp(now):
        findings.append(Finding("USER_BANNED", Severity.WARNING,
                                f"The account is banned until {_when(banned)}: it cannot sign in.",
                                {"user_id": row["user_id"], "banned_until": _when(banned)},
                                ["Find out who banned it and why (auth audit log) before lifting the ban."]))
    if row["email_confirmed_at"] is None or pd.isna(row["email_confirmed_at"]):
        findings.append(Finding("EMAIL_NOT_CONFIRMED", Severity.WARNING,
                                "The email address was never confirmed: the confirmation link was not used.",
                                {"user_id": row["user_id"], "signed_up": _when(row["created_at"])},
                                ["Resend the confirmation email (Supabase dashboard: Authentication, Users).",
                                 "No email arrives? Run signup-failures (email delivery)."]))
    if not row["has_profile"]:
        findings.append(Finding("PROFILE_MISSING", Severity.WARNING,
                                "The account has no profile row: the app's profile page answers 404 for it.",
                                {"user_id": row["user_id"]},
                                ["Check the signup path that creates the profile (error_logs at signup time)."]))
    return findings


PAYING = ("active", "trialing", "past_due")    # a subscription the user is (still) charged for


def memberships(members: pd.DataFrame, found: pd.DataFrame, paid: pd.DataFrame | None = None) -> list[Finding]:
    """PAYING_NON_MEMBER when the user's paid subscription is for a workspace they are no longer a member of (removed,
    not "not joined yet": a billing and access question, not an invitation); else TENANT_MEMBERSHIP_MISSING when the
    account is in no tenant (after signing in they see no workflows, executions or plan). `paid` is the named query
    user_paid_workspaces."""
    if found.empty or members.attrs.get("error"):
        return []
    row = found.iloc[0]
    if paid is not None and not paid.attrs.get("error"):
        lost = paid[paid["status"].isin(PAYING) & (paid["tier"] != "free") & ~paid["member"].astype(bool)]
        if len(lost):
            ws = lost.iloc[0]
            name = ws["tenant"] if ws["tenant"] else ws["tenant_id"]
            return [Finding("PAYING_NON_MEMBER", Severity.WARNING,
                            f"{row['email']} pays for the {ws['tier']} plan ({ws['status']}) of workspace {name} "
                            f"({ws['slug']}) but is no longer a member of it: they pay and cannot see its data.",
                            {"user_id": row["user_id"], "tenant_id": ws["tenant_id"], "workspace": ws["slug"],
                             "tier": ws["tier"], "status": ws["status"],
                             "stripe_subscription_id": ws["stripe_subscription_id"],
                             "other_memberships": list(members["slug"]) if len(members) else []},
                            [f"Ask the owner or an admin of {ws['slug']} whether removing them was intended "
                             "(tenant_members; the auth audit log shows who acted when).",
                             "Removed by mistake: the owner re-invites them and their data is back.",
                             "Intended: move the subscription to whoever keeps the workspace or cancel it, and "
                             "refund the time they could not use (billing, with the customer's consent)."])]
    if len(members):
        return []
    return [Finding("TENANT_MEMBERSHIP_MISSING", Severity.WARNING,
                    f"{row['email']} is a member of no tenant: after signing in they see no data.",
                    {"user_id": row["user_id"], "signed_up": _when(row["created_at"])},
                    ["Ask which workspace they expect; its owner or an admin invites them (tenant_members).",
                     "Many new users without a tenant? Check the signup and invitation paths."])]


def access(reads: pd.DataFrame | None, user_id: str | None) -> list[Finding]:
    """RLS_BLOCKS_USER when, as the user, a read returns fewer rows than exist for them; USER_ACCESS_OK when every
    read returns all of them; USER_ACCESS_UNKNOWN when the test could not run (its functions missing, ...);
    nothing when there was no account to test."""
    if reads is None:
        return []
    if error := reads.attrs.get("error"):
        steps = (["Install the read-only functions user-support reads as a user through (docs/security.md, The "
                  "monitoring role: aias_runbooks.user_reads and user_reads_as_user, EXECUTE granted to aias_monitor). "
                  "Never let the "
                  "monitoring role SET ROLE authenticated: it could then write as any user."]
                 if reads.attrs.get("setup_missing") else ["Re-run; if it persists, run the reads by hand."])
        return [Finding("USER_ACCESS_UNKNOWN", Severity.UNKNOWN, f"The data-access test could not run as the user: "
                        f"{error}", {"user_id": user_id}, steps)]
    short = reads[reads["visible"] < reads["expected"]]
    if short.empty:
        counts = ", ".join(f"{r.table} {r.visible}" for r in reads.itertuples(index=False))
        return [Finding("USER_ACCESS_OK", Severity.OK, f"As the user, under RLS, every read returns all the rows "
                        f"that exist for them ({counts}).", {"user_id": user_id})]
    blocked = {r.table: {"expected": int(r.expected), "visible": int(r.visible)} for r in short.itertuples(index=False)}
    said = "; ".join(f"{t}: {c['visible']} of {c['expected']} rows" for t, c in blocked.items())
    return [Finding("RLS_BLOCKS_USER", Severity.CRITICAL,
                    f"Row level security hides the user's own data from them: {said}.",
                    {"user_id": user_id, "tables": list(blocked), "blocked": blocked},
                    [f"Read the SELECT policies of {', '.join(blocked)} (pg_policies) against the app's membership "
                     "model: a recent migration or dashboard change is the usual cause.",
                     "Every member of a tenant is likely affected: treat it as an incident, escalate to "
                     "engineering.", "Run database-health (RLS lint) after the fix and this runbook again."])]


# -- escalation ---------------------------------------------------------------------------------------------------

SELF_SERVE = "Self-serve answer"
LEVEL_1 = "Level 1: check logs, verify the user's account"
LEVEL_2 = "Level 2: check the database, verify configuration"
LEVEL_3 = "Level 3: check code, verify deployments (open an incident; Level 4: escalate to engineering)"

# code: (level, rank, the reply to the user: no internal detail, no names of tables, ids or counts)
REPLIES: dict[str, tuple[str, int, str]] = {
    "RLS_BLOCKS_USER": (LEVEL_3, 3, "Thank you for telling us. We found a problem on our side that hides some of your "
                        "data from you; your data is safe and nothing was lost. Our engineers are fixing it now and "
                        "we will write to you as soon as it is resolved."),
    "SUBSCRIPTION_MISMATCH": (LEVEL_2, 2, "Thank you for your patience. Your payment reached us, but your plan was "
                              "not updated on our side. We are correcting it now and will confirm as soon as your "
                              "plan is active; you will not be charged again."),
    "USER_ACCESS_UNKNOWN": (LEVEL_2, 2, "Thank you for reaching out. We are looking into your account and will get "
                            "back to you shortly."),
    "PAYING_NON_MEMBER": (LEVEL_2, 2, "Thank you for reaching out. Your subscription is active, but your account is "
                          "no longer a member of the workspace it pays for, which is why you do not see its data. We "
                          "are checking with the workspace's owner and will restore your access or sort out your "
                          "plan; you will not pay for time you could not use."),
    "TENANT_MEMBERSHIP_MISSING": (LEVEL_1, 1, "Thank you for reaching out. Your account is active, but it has not "
                                  "joined a workspace yet, which is why you do not see any data. Please ask your "
                                  "workspace owner to invite you with the email address you signed up with; once "
                                  "you accept, your workflows will appear."),
    "USER_BANNED": (LEVEL_1, 1, "Thank you for reaching out. Your account is currently suspended. Our team is "
                    "reviewing it and will get back to you."),
    "PROFILE_MISSING": (LEVEL_1, 1, "Thank you for reaching out. Your account setup did not complete on our side. "
                        "We are finishing it for you and will let you know when it is done."),
    "EMAIL_NOT_CONFIRMED": (SELF_SERVE, 0, "Thank you for reaching out. Your email address is not confirmed yet: "
                            "please use the link in the confirmation email we sent when you signed up (check your "
                            "spam folder), or reply and we will send a new one."),
    "USER_NOT_FOUND": (SELF_SERVE, 0, "Thank you for reaching out. We could not find an account for the email "
                       "address you wrote from. Could you tell us the email address you signed up with?"),
}
# a WARNING of these codes is a milder case than their CRITICAL one (billing: a status differs, nobody is unpaid for)
MILDER = {"SUBSCRIPTION_MISMATCH": "Thank you for reaching out. We found a detail of your plan that does not match "
                                   "our billing records. We are checking it and will follow up shortly; there is "
                                   "nothing you need to do."}
ALL_CLEAR = ("Thank you for reaching out. We checked your account, your workspace, your plan and your access to "
             "your data, and everything looks right on our side. Please sign out and back in; if it still does not "
             "work, reply with what you see (a screenshot helps) and roughly when it happened.")


@dataclass
class Escalation:
    """Which level of the playbook's Support Escalation the findings call for, why, and the reply to send."""

    level: str
    because: list[str]
    reply: str
    also: list[str] = field(default_factory=list)    # problems of a lower level: handle them too, after

    def _repr_html_(self) -> str:
        why = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in self.because) or "<li>no problem found</li>"
        also = (f"<p>Also found (lower level, handle after): {', '.join(html.escape(c) for c in self.also)}</p>"
                if self.also else "")
        return (f"<h4>Escalation: {html.escape(self.level)}</h4><p>Because of:</p><ul>{why}</ul>{also}"
                f"<p><b>Reply to send the user</b> (no internal detail):</p>"
                f"<blockquote style='border-left:3px solid #999;padding-left:8px'>{html.escape(self.reply)}"
                f"</blockquote>")

    def __repr__(self) -> str:
        also = f"\nAlso found: {', '.join(self.also)}" if self.also else ""
        return f"Escalation: {self.level}\nBecause of: {', '.join(self.because) or 'no problem found'}{also}\n" \
               f"Reply: {self.reply}"


def escalation(findings: list[Finding]) -> Escalation:
    """The highest level any finding calls for (a finding this runbook does not know, e.g. DB_UNREACHABLE: Level
    2 when it is a problem); its reply; the codes behind it."""
    problems = [f for f in findings if f.severity is not Severity.OK]
    if not problems:
        return Escalation(SELF_SERVE, [], ALL_CLEAR)
    ranked = [(_reply(f), f.code) for f in problems]
    (level, rank, reply), _ = max(ranked, key=lambda item: item[0][1])
    because = [code for (lvl, _, _), code in ranked if lvl == level]
    also = [code for (lvl, _, _), code in ranked if lvl != level]
    return Escalation(level, list(dict.fromkeys(because)), reply, list(dict.fromkeys(also)))


def _reply(finding: Finding) -> tuple[str, int, str]:
    level, rank, reply = REPLIES.get(finding.code, (LEVEL_2, 2, REPLIES["USER_ACCESS_UNKNOWN"][2]))
    if finding.severity is Severity.WARNING and finding.code in MILDER:
        reply = MILDER[finding.code]
    return level, rank, reply
