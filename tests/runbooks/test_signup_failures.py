"""signup-failures through the runner, against real signups: the sandbox API's /api/auth/signup with its rate
limiter in rate_limits, Supabase Auth's health and the welcome email through Resend (sandbox/services.py)."""

from __future__ import annotations

import json
import secrets
import time

import httpx
import psycopg
import pytest
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.sandbox.emulators.hosted import state as services
from aias_runbooks.sandbox.faults import signup_activity as signups

from ..helpers import PROBLEMS, finding, sandbox_dsn

KEY = f"ip:{signups.BURST_CLIENT}"


def signup_from(client: str) -> int:
    api = dotenv_values(paths.sandbox_dir() / "sandbox.env")["AIAS_SANDBOX_API_URL"]
    return httpx.post(f"{api}/api/auth/signup", headers={"X-Forwarded-For": client}, timeout=10,
                      json={"email": f"t.{secrets.token_hex(4)}@example.test", "password": "long-enough-1"}).status_code


def blocked(key: str) -> bool:
    with psycopg.connect(sandbox_dsn()) as conn:
        return bool(conn.execute("SELECT 1 FROM rate_limits WHERE key = %s AND blocked_until > now()",
                                 [key]).fetchone())


def test_healthy_signups_have_no_problem(quiet, run):
    result = run("signup-failures")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values())
    assert {"RATE_LIMITS_OK", "AUTH_HEALTHY", "EMAIL_DOMAIN_VERIFIED", "EMAIL_DELIVERY_OK"} <= result.codes.keys()


def test_rate_limited_client_is_named_dry_run_keeps_it_apply_clears_and_audits(run, scenario):
    scenario("signup-rate-limited")
    result = run("signup-failures", "-p", f"key={KEY}")
    assert result.proc.returncode == 2
    assert result.codes["SIGNUP_SUCCESS_RATE_LOW"] == "CRITICAL" and "HTTP 429" in \
        finding(result, "SIGNUP_SUCCESS_RATE_LOW")["title"]
    limited = finding(result, "SIGNUP_RATE_LIMITED")
    assert KEY in limited["title"] and limited["evidence"]["keys"][0].startswith(f"{KEY} until ")
    assert blocked(KEY) and not (result.output / "audit.jsonl").exists(), "a dry run changes nothing"
    assert signup_from(signups.BURST_CLIENT) == 429

    applied = run("signup-failures", "-p", f"key={KEY}", "-p", "apply=true", "--operator", "alice")
    assert not blocked(KEY)
    records = [json.loads(line) for line in (applied.output / "audit.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["started", "finished"] and records[0]["criteria"] == {"key": KEY}
    assert records[1]["outcome"].startswith("cleared") and records[1]["operator"] == "alice"
    assert signup_from(signups.BURST_CLIENT) == 201, "the client can sign up again"


def test_unverified_sending_domain_is_named(run, scenario):
    scenario("email-domain-unverified")
    result = run("signup-failures")
    assert result.proc.returncode == 2
    domain = finding(result, "EMAIL_DOMAIN_UNVERIFIED")
    assert domain["severity"] == "CRITICAL" and domain["evidence"]["domains"] == {"aiautomatedsystems.ca": "failed"}
    delivery = finding(result, "EMAIL_DELIVERY_FAILING")
    assert delivery["severity"] == "CRITICAL" and "not verified" in delivery["title"]
    assert result.codes["SIGNUP_SUCCESS_RATE_OK"] == "OK", "signups still succeed: only the email is missing"


def test_no_sending_domain_at_resend_is_a_warning_not_every_domain_verified(quiet, run):
    """Resend lists no domain (none added, or the profile's key is another account's): no email can be sent from the
    platform's address. An empty list used to read as "every sending domain is verified" (OK)."""
    with services.services_state(paths.sandbox_dir()) as state:
        saved, state["domains"] = state["domains"], []
    try:
        result = run("signup-failures")
    finally:
        with services.services_state(paths.sandbox_dir()) as state:
            state["domains"] = saved
    assert result.proc.returncode == 1, result.verdict["findings"]
    assert result.proc.stdout.startswith("WARNING: EMAIL_NO_SENDING_DOMAIN - No sending domain at Resend"), \
        result.proc.stdout
    assert "EMAIL_DOMAIN_VERIFIED" not in result.codes
    assert finding(result, "EMAIL_NO_SENDING_DOMAIN")["evidence"] == {"domains": 0}


@pytest.fixture
def auth_down(sandbox):
    """Supabase Auth down for one test; afterwards up again and the test's signups forgotten, as a scenario's are."""
    folder, since = paths.sandbox_dir(), time.time()
    with services.services_state(folder) as state:
        state["auth"] = "down"
    yield
    with services.services_state(folder) as state:
        state["auth"] = "up"
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        signups.reset(folder, conn, since)


def test_auth_down_fails_signups_and_is_critical(run, auth_down):
    assert signup_from("192.0.2.77") == 503
    result = run("signup-failures")
    assert result.codes["AUTH_UNHEALTHY"] == "CRITICAL" and result.proc.returncode == 2
    assert "HTTP 503" in finding(result, "AUTH_UNHEALTHY")["evidence"]["error"]


def test_bounces_at_one_domain_name_it_as_that_companys_mail_server(run, scenario):
    """Bounces concentrated on one recipient domain: that company's mail server rejects ours (tell them), not our
    sending reputation; the finding names the domain."""
    scenario("email-bounces-one-domain")
    result = run("signup-failures")
    assert result.proc.returncode == 1, result.verdict["findings"]
    failing = finding(result, "EMAIL_DELIVERY_FAILING")
    assert failing["severity"] == "WARNING" and signups.BOUNCING_DOMAIN in failing["title"]
    assert failing["evidence"]["bounced_by_domain"] == {signups.BOUNCING_DOMAIN: signups.BOUNCES}
    assert failing["evidence"]["bounce_pattern"] == "one domain" and "allowlist" in " ".join(failing["next_steps"])
    assert result.codes["EMAIL_DOMAIN_VERIFIED"] == "OK" and result.codes["SIGNUP_SUCCESS_RATE_OK"] == "OK"


@pytest.fixture
def bouncing_everywhere(sandbox):
    """For one test every recipient's mail server rejects our mail (our sending reputation, or our DNS), and people
    of signups.BOUNCES companies sign up; afterwards mail is accepted again and their signups forgotten."""
    folder, since = paths.sandbox_dir(), time.time()
    signups.bounces_at(["*"], folder, dotenv_values(folder / "sandbox.env"))
    yield
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        signups.reset(folder, conn, since)


def test_bounces_spread_over_many_domains_point_at_our_sending(run, bouncing_everywhere):
    result = run("signup-failures")
    assert result.proc.returncode == 1, result.verdict["findings"]
    failing = finding(result, "EMAIL_DELIVERY_FAILING")
    assert failing["severity"] == "WARNING" and failing["evidence"]["bounce_pattern"] == "spread"
    assert len(failing["evidence"]["bounced_by_domain"]) >= signups.BOUNCES
    assert "our sending reputation or DNS" in failing["title"] and "SPF" in failing["next_steps"][0]
