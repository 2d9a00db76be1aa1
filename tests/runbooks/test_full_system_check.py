"""full-system-check through the runner: one table of every subsystem (up, degraded, down, unknown) with what was
seen and the runbook to run next, the owning runbooks' own findings, SYSTEM_CHECK summing them up, nothing
written anywhere, and an answer within seconds when every target hangs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest

from ..helpers import Run, admin_session, code_cells, finding, hanging_port, healthy, ran_to_the_end, rows, vercel

SLUG = "full-system-check"


def next_command(runbook: str) -> str:
    return f"aias-runbooks run {runbook} --env sandbox"


def api_down(result: Run) -> None:
    assert result.proc.returncode == 2
    check = finding(result, "SYSTEM_CHECK")
    assert check["severity"] == "CRITICAL" and check["title"].startswith("API is down"), check["title"]
    assert result.codes["API_DOWN"] == "CRITICAL"
    api = rows(result)["API"]
    assert api["status"] == "down" and "no answer" in api["detail"]
    assert api["run_next"] == next_command("incident-system-down")
    assert f"API (down): run `{next_command('incident-system-down')}`" in check["next_steps"]
    assert rows(result)["Database"]["status"] == "up" and rows(result)["Resend email"]["status"] == "up"


def webhook_endpoint_down(result: Run) -> None:
    assert result.proc.returncode == 2
    webhooks = rows(result)["Stripe webhooks"]
    assert webhooks["status"] == "down" and "HTTP 500" in webhooks["detail"], webhooks
    assert webhooks["run_next"] == next_command("stripe-webhook-failures")
    assert result.codes["WEBHOOK_EVENTS_UNPROCESSED"] == "CRITICAL"
    assert result.codes["WEBHOOK_SUCCESS_RATE_LOW"] == "CRITICAL"
    assert "WEBHOOK_ENDPOINT_UNREACHABLE" not in result.codes, "no test delivery is posted"
    assert "Stripe webhooks" in finding(result, "SYSTEM_CHECK")["title"]


def email_domain_unverified(result: Run) -> None:
    assert result.proc.returncode == 2
    email = rows(result)["Resend email"]
    assert email["status"] in {"degraded", "down"} and "aiautomatedsystems.ca" in email["detail"], email
    assert email["run_next"] == next_command("signup-failures")
    assert result.codes["EMAIL_DOMAIN_UNVERIFIED"] == "CRITICAL"


def error_spike_after_deploy(result: Run) -> None:
    assert result.proc.returncode == 2
    live = vercel().deployments().iloc[0]["id"]
    errors = rows(result)["Vercel error rate"]
    assert errors["status"] == "down" and errors["run_next"] == next_command("high-error-rate"), errors
    assert re.search(rf"{live} live since .*: \d+\.\d+% of \d+ requests answered 5xx since then", errors["detail"]), \
        errors["detail"]
    assert finding(result, "ERROR_SPIKE_AFTER_DEPLOY")["evidence"]["deployment"] == live
    assert rows(result)["Vercel deployment"]["status"] == "up", "the deployment itself is READY"


def db_pool_exhaustion(result: Run) -> None:
    assert result.proc.returncode == 2
    table = rows(result)
    assert table["Database"]["status"] in {"down", "degraded"}, table["Database"]
    assert table["Database pool"]["status"] == "down" and "connection slot" in table["Database pool"]["detail"]
    assert table["Database pool"]["run_next"] == next_command("database-connection-errors")
    assert result.codes["DB_POOL_SATURATED"] == "CRITICAL"
    assert table["API"]["status"] == "up" and table["Resend email"]["status"] != "down"


EXPECTED: dict[str, Callable[[Run], None]] = {
    "healthy": healthy, "api-down": api_down, "webhook-endpoint-down": webhook_endpoint_down,
    "email-domain-unverified": email_domain_unverified, "error-spike-after-deploy": error_spike_after_deploy,
    "db-pool-exhaustion": db_pool_exhaustion}


def probe_events() -> int:
    """Signature-probe events the app has recorded (stripe-webhook-failures posts them; this runbook must not)."""
    with admin_session() as conn:
        return conn.execute("SELECT count(*) FROM public.stripe_events WHERE id LIKE 'evt_aias_probe_%'").fetchone()[0]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_subsystem_in_one_table_with_the_runbook_to_run_next(run, request, name):
    if name != "healthy":
        request.getfixturevalue("scenario")(name)
    before = probe_events() if name == "healthy" else None   # no session to spare when the pool is exhausted
    result = run(SLUG)
    EXPECTED[name](result)
    ran_to_the_end(result)
    if before is not None:
        assert probe_events() == before, "a system check posts nothing to the webhook endpoint"


def test_every_target_hanging_is_checked_at_once_within_its_timeout(run):
    """API, hosted services, Stripe and the database all accept connections and never answer: every row is down
    or unknown, and the check takes about one timeout (plus the database's connect timeout), not one per target."""
    timeout_s = 2
    with hanging_port() as port:
        frozen = f"http://127.0.0.1:{port}"
        env = os.environ | {"AIAS_SANDBOX_API_URL": frozen, "AIAS_SANDBOX_SERVICES_URL": frozen,
                            "AIAS_SANDBOX_STRIPE_API_BASE": frozen,
                            "AIAS_SANDBOX_DATABASE_URL": f"postgresql://aias_monitor:x@127.0.0.1:{port}/postgres"}
        result = run(SLUG, "-p", f"timeout_s={timeout_s}", env=env)
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert {"API_DOWN", "DB_UNREACHABLE", "STRIPE_UNREACHABLE"} <= result.codes.keys()
    assert {r["status"] for r in rows(result).values()} <= {"down", "unknown"}, rows(result)
    ran_to_the_end(result)
    took = code_cells(result)["fsc-04"]["metadata"]["papermill"]["duration"]
    assert took < 5 + 2 * timeout_s + 3, f"the check took {took:.1f} s: the probes did not run at once"

