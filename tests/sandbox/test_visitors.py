"""The sandbox's visitors (visitors.py) make `healthy` a busy platform over real HTTP: signups, logins, profiles,
workflow runs the worker executes, Stripe billing updates delivered as webhooks, a share of 4xx and a few 5xx;
and the API answers people's mistakes with the right 4xx, its rare bugs with a logged 500."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from aias_runbooks.sandbox import processes
from aias_runbooks.sandbox.platform import sessions
from aias_runbooks.sandbox.traffic import visitors

from ..helpers import sandbox_dsn, sandbox_env, wait_for

LIVE = "request_id NOT LIKE 'req\\_%%'"     # the seeded history's request ids start with req_


def _api() -> str:
    return sandbox_env()["AIAS_SANDBOX_API_URL"]


def _query(sql: str, params=()) -> list[tuple]:
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _seen(since: float) -> set[tuple[str, int]]:
    return set(_query(f"SELECT DISTINCT path, status FROM api_requests WHERE created_at >= to_timestamp(%s) "
                      f"AND {LIVE}", (since,)))


def _member_session(admin: psycopg.Connection, tenant=None) -> tuple[str, str, str]:
    """(token, workflow, tenant) of a fresh session of a member of a tenant with an active workflow."""
    user, workflow, tenant = admin.execute(
        "SELECT m.user_id, w.id::text, w.tenant_id::text FROM tenant_members m JOIN workflows w "
        "ON w.tenant_id = m.tenant_id AND w.status = 'active' WHERE %(t)s::uuid IS NULL OR m.tenant_id = %(t)s "
        "ORDER BY m.user_id LIMIT 1", {"t": tenant}).fetchone()
    token = admin.execute("INSERT INTO auth.sessions (id, user_id, created_at, not_after, ip) VALUES "
                          "(gen_random_uuid(), %s, now(), now() + interval '1 day', '198.51.100.9') "
                          "RETURNING id::text", (user,)).fetchone()[0]
    return token, workflow, tenant


def test_healthy_is_a_busy_platform_over_http(sandbox, scenario):
    scenario("healthy")
    since = time.time() - 90
    wanted = {("/api/healthz", 200), ("/api/workflows", 200), ("/api/workflows/run", 202), ("/api/profile", 200),
              ("/api/auth/signup", 201), ("/api/auth/login", 200), ("/api/stripe/webhook", 200)}
    wait_for(lambda: wanted <= _seen(since), 200, f"the visitors' requests {sorted(wanted)}", interval=2)
    ran = _query("SELECT e.status FROM api_requests r JOIN workflow_executions e ON e.user_id = r.user_id "
                 "AND e.created_at BETWEEN r.created_at - interval '1 second' AND r.created_at "
                 "WHERE r.path = '/api/workflows/run' AND r.status = 202 AND r.created_at >= to_timestamp(%s)",
                 (since,))
    assert ran, "a run answered 202 queued an execution of that user"
    wait_for(lambda: any(s == "succeeded" for (s,) in _query(
        "SELECT e.status FROM workflow_executions e JOIN api_requests r ON r.user_id = e.user_id "
        "AND r.path = '/api/workflows/run' AND r.status = 202 AND e.created_at >= to_timestamp(%s)", (since,))),
        60, "the worker to execute a run the visitors queued")
    updates = _query("SELECT status FROM stripe_events WHERE type = 'customer.updated' "
                     "AND received_at >= to_timestamp(%s)", (since,))
    assert updates and {s for (s,) in updates} == {"ignored"}, updates
    logins = _query("SELECT a.ip_address, s.ip_address FROM auth.audit_log_entries a "
                    "JOIN auth.audit_log_entries s ON s.payload->>'actor_id' = a.payload->>'actor_id' "
                    "AND s.payload->>'action' = 'user_signedup' "
                    "WHERE a.payload->>'action' = 'login' AND a.created_at >= to_timestamp(%s)", (since,))
    assert logins and all(login == signup for login, signup in logins), "each account logs in from its own address"


def test_the_visitors_mix_answers_some_4xx_and_a_few_scattered_500s(sandbox, scenario):
    scenario("healthy")
    crowd = visitors.Visitors({k: v for k, v in sandbox_env().items() if v is not None})
    crowd.refresh()
    assert crowd.sessions.items, "the visitors found live sessions of tenant members"
    for _ in range(10):           # accounts of their own to log in with (one signup in ten is mistyped)
        if len(crowd.accounts) < 3:
            crowd.signup()
    since = time.time()
    for _ in range(max(visitors.BUG_EVERY) + 100):     # enough visits for at least one bug
        crowd.visit()
    by_status = dict(_query(f"SELECT status, count(*) FROM api_requests WHERE created_at >= to_timestamp(%s) "
                            f"AND {LIVE} GROUP BY status", (since,)))
    total = sum(by_status.values())
    client = sum(n for s, n in by_status.items() if 400 <= s < 500)
    server = sum(n for s, n in by_status.items() if s >= 500)
    assert 0.01 <= client / total <= 0.08, by_status
    assert server >= 1 and server / total < 0.01, by_status
    wait_for(lambda: len(_query("SELECT 1 FROM error_logs WHERE created_at >= to_timestamp(%s) AND level = 'error'",
                                (since,))) >= server, 15, "every 500 logged as an unhandled exception")


def test_billing_updates_carry_on_after_stripe_forgot_its_customers(sandbox, scenario):
    scenario("healthy")
    crowd = visitors.Visitors({k: v for k, v in sandbox_env().items() if v is not None})
    crowd.customers = ["cus_from_a_previous_stripe"]     # as after a billing scenario restarted Stripe
    since = time.time() - 1
    crowd.billing_update()
    wait_for(lambda: _query("SELECT 1 FROM stripe_events WHERE type = 'customer.updated' "
                            "AND received_at >= to_timestamp(%s)", (since,)), 30,
             "the update, made on a customer Stripe knows, delivered as customer.updated")
    assert "cus_from_a_previous_stripe" not in crowd.customers


def test_the_api_answers_mistakes_with_4xx_and_its_bugs_with_logged_500s(sandbox, scenario):
    scenario("healthy")
    api = _api()
    with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
        token, workflow, _ = _member_session(admin)
    bearer = {"Authorization": f"Bearer {token}"}
    email, password = f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    mark = f"test-{secrets.token_hex(4)}"
    hostile = {"X-Forwarded-For": "'; DROP TABLE api_requests; --", "X-Request-Id": f"{mark}-signup"}
    assert httpx.post(api + "/api/auth/signup", json={"email": email, "password": password},
                      headers=hostile).status_code == 201
    assert httpx.post(api + "/api/auth/login", json={"email": email, "password": "nope"}).status_code == 400
    logged_in = httpx.post(api + "/api/auth/login", json={"email": email, "password": password})
    assert logged_in.status_code == 200
    mine = {"Authorization": f"Bearer {logged_in.json()['access_token']}"}
    assert httpx.get(api + "/api/profile", headers=mine).json()["email"] == email
    assert httpx.get(api + "/api/profile", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert httpx.get(api + "/api/profile", headers={"Authorization": f"Bearer {uuid.uuid4()}"}).status_code == 401
    assert httpx.post(api + "/api/workflows/run", json={"workflow_id": workflow}, headers=mine).status_code == 404
    assert httpx.post(api + "/api/workflows/run", json={"workflow_id": "x"}, headers=bearer).status_code == 404
    assert httpx.post(api + "/api/workflows/run", json={"workflow_id": workflow}, headers=bearer).status_code == 202
    marked = {"X-Request-Id": f"{mark}-bug"}
    bugs = [httpx.get(api + "/api/workflows?limit=all", headers=marked),
            httpx.post(api + "/api/auth/login", data={"email": email, "password": password}, headers=marked),
            httpx.post(api + "/api/workflows/run", json={"workflowId": workflow}, headers=bearer | marked)]
    assert [b.status_code for b in bugs] == [500, 500, 500]
    logged = "SELECT message FROM error_logs WHERE request_id = %s ORDER BY message"
    wait_for(lambda: len(_query(logged, (f"{mark}-bug",))) == 3, 15, "the API to log its three unhandled exceptions")
    messages = [m for (m,) in _query(logged, (f"{mark}-bug",))]
    assert [m.split(":")[1].strip() for m in messages] == ["JSONDecodeError", "KeyError", "ValueError"], messages
    wait_for(lambda: _query("SELECT 1 FROM api_requests WHERE request_id = %s", (f"{mark}-signup",)), 15,
             "the signup's request log")
    (signup_ip,) = _query("SELECT host(ip) FROM api_requests WHERE request_id = %s", (f"{mark}-signup",))[0]
    assert signup_ip == "127.0.0.1", "a forwarded-for header that is not an address is not taken as one"


def test_a_run_past_the_plans_daily_limit_is_refused(sandbox, scenario):
    scenario("plan-limit-reached")
    from aias_runbooks.sandbox.faults import workflow_faults as workflows
    with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
        tenant = str(admin.execute(workflows.PLAN_TENANT_SQL).fetchone()[0])
        token, workflow, _ = _member_session(admin, tenant)
        before = admin.execute("SELECT count(*) FROM workflow_executions WHERE tenant_id = %s", (tenant,)).fetchone()
    refused = httpx.post(_api() + "/api/workflows/run", json={"workflow_id": workflow},
                         headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 429 and "limit" in refused.json()["error"]
    after = _query("SELECT count(*) FROM workflow_executions WHERE tenant_id = %s", (tenant,))[0]
    assert after == before, "nothing was queued"


def test_the_visitors_outlive_the_api_going_down(sandbox, scenario):
    record = json.loads((Path(sandbox) / "state.json").read_text())["components"]["visitors"]
    log = Path(sandbox) / "logs" / "visitors.log"
    seen = len(log.read_text().splitlines())
    scenario("api-down")
    refused = lambda: [line for line in log.read_text().splitlines()[seen:] if "ConnectError" in line]  # noqa: E731
    wait_for(refused, sessions.LOG_REPEAT_S + 15, "the visitors to log that the API refuses them")   # (an earlier
    # test's identical line may hold this one back for up to LOG_REPEAT_S)
    time.sleep(5)   # more refusals meanwhile (several a second): still one line
    assert processes.alive(record) and len(refused()) == 1, refused()
    scenario("healthy")
    since = time.time()
    wait_for(lambda: _seen(since), 30, "the visitors' requests to reach the API again")
    assert processes.alive(record), "the same visitors process carried on"
