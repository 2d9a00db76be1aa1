"""user-support through the real CLI against the sandbox: one user's account, memberships, subscription, workflows,
requests, and the data-access test that runs their reads as them under RLS (read-only, rolled back)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd
import pytest

from aias_runbooks.sandbox.faults import rls_blocks_user as rls_user
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import database, user_access

from ..helpers import admin_session, finding, refuse, wait_for

DEFAULT_USER = "user0001@example.test"        # the notebook's default: the first seeded user, a tenant owner
HOSTILE_EMAIL = "o'brien\"<script>alert(1)</script>@example.test"
# the user's own rows, as text: what a write by the runbook would change
ROWS_SQL = """
SELECT md5(concat_ws('|', (SELECT u::text FROM auth.users u WHERE u.id = %(id)s),
                          (SELECT p::text FROM public.profiles p WHERE p.id = %(id)s),
                          (SELECT string_agg(m::text, ',' ORDER BY m.tenant_id) FROM public.tenant_members m
                           WHERE m.user_id = %(id)s),
                          (SELECT s::text FROM public.subscription_tiers s WHERE s.user_id = %(id)s)))
"""


def _user_id(email: str) -> str:
    with admin_session() as conn:
        return str(conn.execute("SELECT id FROM auth.users WHERE email = %s", [email]).fetchone()[0])


@contextmanager
def signed_up(email: str) -> Iterator[str]:
    """A user who just signed up through the sandbox API (no tenant yet); deleted afterwards."""
    answer = httpx.post(load_environment("sandbox").api_base_url + "/api/auth/signup", timeout=10,
                        json={"email": email, "password": secrets.token_urlsafe(12)},
                        headers={"X-Forwarded-For": f"192.0.2.{secrets.randbelow(200) + 20}"})
    assert answer.status_code == 201, answer.text
    user_id = answer.json()["user"]["id"]
    try:
        yield user_id
    finally:
        with admin_session() as conn:
            conn.execute("DELETE FROM auth.users WHERE id = %s", [user_id])


def _no_session_left() -> bool:
    with admin_session() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                            "'aias-runbooks/user-support/%'").fetchone()[0] == 0


def test_healthy_seeded_member_can_read_everything(sandbox, run):
    result = run("user-support")
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    assert result.codes == {"USER_FOUND": "OK", "SUBSCRIPTIONS_MATCH": "OK", "USER_ACCESS_OK": "OK"}
    assert result.verdict["provenance"]["parameters"]["user"] == DEFAULT_USER
    report = (result.folder / "report.html").read_text()
    for shown in ["email confirmed", "last sign-in", "member_since", "stripe_subscription_id", "executions",
                  "their tenants' workflows</td>", "expected", "visible", "Escalation: Self-serve answer",
                  "Reply to send the user"]:
        assert shown in report, shown
    by_id = run("user-support", "-p", f"user={_user_id(DEFAULT_USER)}")
    assert by_id.proc.returncode == 0, by_id.proc.stdout
    assert finding(by_id, "USER_FOUND")["evidence"] == finding(result, "USER_FOUND")["evidence"]


def test_rls_blocks_user_names_the_table_and_exact_counts(scenario, run, sandbox):
    scenario("rls-blocks-user")
    who = json.loads((sandbox / rls_user.FILE).read_text())
    count = "SELECT count(*) FROM public.workflows WHERE tenant_id = %s"
    with admin_session() as conn:
        workflows = conn.execute(count, [who["tenant_id"]]).fetchone()[0]
        before = conn.execute(ROWS_SQL, {"id": who["user_id"]}).fetchone()[0]
    assert workflows > 0
    result = run("user-support", "-p", f"user={who['email']}")
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    blocked = finding(result, "RLS_BLOCKS_USER")
    assert blocked["severity"] == "CRITICAL"
    assert blocked["evidence"]["tables"] == ["workflows"]
    assert blocked["evidence"]["blocked"] == {"workflows": {"expected": workflows, "visible": 0}}
    assert f"workflows: 0 of {workflows} rows" in blocked["title"]
    assert "TENANT_MEMBERSHIP_MISSING" not in result.codes
    report = (result.folder / "report.html").read_text()
    assert "Escalation: Level 3" in report
    with admin_session() as conn:                       # the test changed nothing, and nothing stays switched
        assert conn.execute(count, [who["tenant_id"]]).fetchone()[0] == workflows
        assert conn.execute(ROWS_SQL, {"id": who["user_id"]}).fetchone()[0] == before
    wait_for(_no_session_left, 10, "the runbook's session to end")


def test_leaving_rls_blocks_user_restores_the_policy_and_removes_the_user(scenario, sandbox):
    scenario("rls-blocks-user")
    scenario("healthy")
    with admin_session() as conn:
        policy = conn.execute("SELECT pg_get_expr(polqual, polrelid) FROM pg_policy "
                              "WHERE polname = 'workflows_select_member'").fetchone()[0]
        left = conn.execute("SELECT count(*) FROM auth.users WHERE email = %s", [rls_user.EMAIL]).fetchone()[0]
    assert "user_tenant_ids" in policy and left == 0
    assert not (sandbox / rls_user.FILE).exists()


def test_new_signup_without_a_tenant_is_membership_missing(sandbox, run):
    email = f"new.{secrets.token_hex(4)}@example.test"
    with signed_up(email):
        result = run("user-support", "-p", f"user={email}")
    assert result.proc.returncode == 1, result.proc.stdout + result.proc.stderr
    assert result.codes["TENANT_MEMBERSHIP_MISSING"] == "WARNING"
    assert result.codes["USER_ACCESS_OK"] == "OK"          # their profile and plan are readable: nothing else exists
    assert "Escalation: Level 1" in (result.folder / "report.html").read_text()


@pytest.mark.parametrize("user", ["nobody.{hex}@example.test", "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_a_user_that_does_not_exist_is_user_not_found(sandbox, run, user):
    result = run("user-support", "-p", f"user={user.format(hex=secrets.token_hex(4))}")
    assert result.proc.returncode == 1, result.proc.stdout + result.proc.stderr
    assert result.codes == {"USER_NOT_FOUND": "WARNING"}
    assert "Traceback" not in (result.folder / "report.html").read_text()


@pytest.mark.parametrize("value", ["not an email", "ada@", "12345", "0f8fad5b-d9cb-469f-a165"])
def test_a_malformed_user_is_refused_before_any_kernel_starts(tmp_path, value):
    result = refuse(tmp_path, "user-support", "-p", f"user={value}")
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert lines == [f"aias-runbooks: error: user-support: parameter 'user' must be an email or a user id (uuid), "
                     f"got '{value}'"], result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-sandbox"], "nothing may be written for bad input"


def test_a_hostile_email_stays_text_in_the_report(sandbox, run):
    with signed_up(HOSTILE_EMAIL):
        result = run("user-support", "-p", f"user={HOSTILE_EMAIL}")
    assert result.proc.returncode == 1, result.proc.stdout + result.proc.stderr
    assert "USER_FOUND" in result.codes
    report = (result.folder / "report.html").read_text()
    assert "<script>alert(1)</script>" not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "alert(1)" not in report.split("Reply to send the user", 1)[1].split("</blockquote>", 1)[0]


def test_the_data_access_test_runs_as_the_user_and_leaves_nothing_switched(sandbox):
    """Directly on a monitoring session: after compare(), the session is the monitor again, outside any transaction,
    with no claims; as the user it saw their rows (same counts as the monitor on healthy)."""
    user_id = _user_id(DEFAULT_USER)
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/test/as-user")
    try:
        with engine.connect() as conn:
            tenants = list(database.query(conn, "user_memberships", user_id=user_id)["tenant_id"])
            since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)
            reads = user_access.compare(conn, user_id, DEFAULT_USER, tenants, since.to_pydatetime())
            assert not reads.attrs.get("error"), reads.attrs
            assert (reads["visible"] == reads["expected"]).all()
            assert reads.set_index("table")["visible"]["profiles"] == 1
            role, claims, read_only = conn.exec_driver_sql(
                "SELECT current_user, current_setting('request.jwt.claims', true), "
                "current_setting('transaction_read_only')").one()
            assert (role, claims or "", read_only) == ("aias_monitor", "", "on")
            assert conn.connection.dbapi_connection.info.transaction_status.name == "IDLE"
    finally:
        engine.dispose()


def test_a_database_without_the_reads_as_user_function_gets_unknown_not_a_traceback(sandbox, run):
    """Production without the function installed (or not granted): UNKNOWN naming the set-up step, never a hint to let
    the monitor switch roles."""
    grant = "EXECUTE ON FUNCTION aias_runbooks.user_reads_as_user(uuid, text, uuid[], timestamptz)"
    with admin_session() as conn:
        conn.execute(f"REVOKE {grant} FROM aias_monitor")
        try:
            result = run("user-support")
        finally:
            conn.execute(f"GRANT {grant} TO aias_monitor")
    assert result.proc.returncode == 3, result.proc.stdout + result.proc.stderr
    unknown = finding(result, "USER_ACCESS_UNKNOWN")
    assert "permission denied for function user_reads_as_user" in unknown["title"]
    assert "Install the read-only functions" in unknown["next_steps"][0]
    assert "RUNBOOK_ERROR" not in result.codes
    wait_for(_no_session_left, 10, "the runbook's session to end")


def test_a_paying_member_removed_from_their_workspace_is_not_a_new_user(run, scenario):
    """Someone who pays for a workspace and was removed from it is not "a new user who has not joined yet": the
    finding names the workspace they pay for, and the escalation and reply are about access and billing."""
    scenario("paying-member-removed")
    with admin_session() as conn:
        email, slug = conn.execute("SELECT p.email, t.slug FROM sandbox_scenario.removed_members r "
                                   "JOIN public.profiles p ON p.id = r.user_id "
                                   "JOIN public.tenants t ON t.id = r.tenant_id").fetchone()
    result = run("user-support", "-p", f"user={email}")
    assert result.proc.returncode == 1, result.proc.stdout + result.proc.stderr
    assert "TENANT_MEMBERSHIP_MISSING" not in result.codes
    paying = finding(result, "PAYING_NON_MEMBER")
    assert paying["severity"] == "WARNING" and paying["evidence"]["workspace"] == slug
    assert f"({slug}) but is no longer a member of it" in paying["title"]
    html = (result.folder / "report.html").read_text()
    assert "Level 2" in html and "no longer a member of the workspace it pays for" in html
