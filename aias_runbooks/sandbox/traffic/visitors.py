"""The platform's users, over HTTP: the sandbox API's everyday requests, so `healthy` is a busy platform.

About VISITS_PER_MINUTE requests a minute, each from a client address (X-Forwarded-For, as Vercel forwards it),
in the shares of the seeded history: the load balancer's health checks, dashboards (GET /api/workflows), workflow
runs (POST /api/workflows/run, which the worker then executes), profiles (GET /api/profile) and logins; besides
them a signup and a Stripe billing-details update (customer.updated, delivered as a signed webhook) every 30 to
90 s. People make mistakes: wrong passwords, expired sessions, mistyped emails, workflows since deleted, and
scanners probe for /wp-login.php, so about 3 % of answers are 4xx. One request in BUG_EVERY (150 to 500, so
never two in one minute) is a rare input that reaches one of the API's bugs (app.py), taken in turn: about 0.3 %
of answers are 500s, no single one dominating, far under the 1 % alert.

Signed-in visitors use the live sessions of tenant members (as their browsers would), read from the database
once a minute in a short session of its own (application_name aias-sandbox/visitors); accounts that signed up
here log in with their passwords. A run leaves each tenant's plan the worker's headroom (worker.PLAN_HEADROOM).
Nothing stops it: an API that is down, a Stripe restarting, a database refusing connections are one log line
each (identical ones rate-limited) and the visits go on.
Run as `python -m aias_runbooks.sandbox.traffic.visitors READY_FILE`.
"""

from __future__ import annotations

import collections
import itertools
import os
import random
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import stripe

from ..emulators.stripe import seeding
from ..platform import sessions
from ..platform.worker import ROOM_SQL, Catalogue

VISITS_PER_MINUTE = 45
SIGNUP_EVERY_S = (30.0, 90.0)
WEBHOOK_EVERY_S = (30.0, 90.0)
BUG_EVERY = (150, 500)
REFRESH_EVERY_S = 60.0
MISTAKE = 0.10                  # share of logins with a wrong password, of signups with an invalid email
EXPIRED = 0.03                  # share of profile requests with an expired session
DELETED = 0.02                  # share of runs of a workflow deleted since the page loaded
LOAD_BALANCER = "10.0.0.2"
USER_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"
MIX = {"healthz": 20, "dashboard": 26, "run": 20, "profile": 15, "login": 12, "scanner": 1}
SESSIONS_SQL = ROOM_SQL + """
SELECT s.id::text, host(s.ip), w.id::text, w.tenant_id, l.max_executions_per_day, coalesce(u.today, 0)
-- sessions sampled first, then up to 3 workflows of each one's tenant: joining every session to every workflow
-- of its tenant first grows with tenant size squared (a 4,000-member tenant with 6,000 workflows: 24 M pairs)
FROM (SELECT id, ip, user_id FROM auth.sessions WHERE not_after > now() ORDER BY random() LIMIT 2000) s
JOIN public.tenant_members m ON m.user_id = s.user_id
CROSS JOIN LATERAL (SELECT w.id, w.tenant_id FROM public.workflows w
                    WHERE w.tenant_id = m.tenant_id AND w.status = 'active' ORDER BY random() LIMIT 3) w
LEFT JOIN plan p ON p.tenant_id = w.tenant_id
JOIN public.plan_limits l ON l.tier = coalesce(p.tier, 'free')
LEFT JOIN used u ON u.tenant_id = w.tenant_id
ORDER BY random()
LIMIT 2000
"""


def _address() -> str:
    return f"{random.choice(['203.0.113', '198.51.100', '192.0.2'])}.{random.randint(1, 254)}"


class Visitors:
    def __init__(self, env: dict[str, str]) -> None:
        self.api, self.dsn = env["AIAS_SANDBOX_API_URL"], env["AIAS_SANDBOX_APP_DATABASE_URL"]
        self.http = httpx.Client(timeout=5)
        self.stripe = seeding.client(env)
        self.sessions = Catalogue(SESSIONS_SQL)
        self.accounts: collections.deque = collections.deque(maxlen=200)   # (email, password, address)
        self.customers: list[str] = []
        self.bugs = itertools.cycle([self.bug_limit_all, self.bug_form_login, self.bug_camel_case_run])
        self.until_bug = random.randint(*BUG_EVERY)

    def send(self, method: str, path: str, address: str, token: str | None = None, **kwargs) -> httpx.Response | None:
        headers = {"X-Forwarded-For": address, "User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return self.http.request(method, self.api + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:   # one condition (the API is down, or too slow), one line, whatever the path
            sessions.log_error(f"the API did not answer: {type(exc).__name__}: {exc}")
            return None

    def refresh(self) -> None:
        """The live sessions and each tenant's room, in a short session (kept as they were if it fails)."""
        try:
            with psycopg.connect(self.dsn, application_name="aias-sandbox/visitors", connect_timeout=5,
                                 autocommit=True, options="-c statement_timeout=5000") as conn:
                self.sessions.load(conn)
        except psycopg.Error as exc:
            sessions.log_error(f"sessions not refreshed: {type(exc).__name__}: {exc.diag.message_primary or exc}")

    def visit(self) -> None:
        self.until_bug -= 1
        if self.until_bug <= 0:
            self.until_bug = random.randint(*BUG_EVERY)
            next(self.bugs)()
            return
        kind = random.choices(list(MIX), weights=list(MIX.values()))[0]
        getattr(self, kind)()

    def signed_in(self) -> tuple[str | None, str, str]:
        """(token, address, workflow) of a live session of a tenant member; no token when none is known."""
        if not self.sessions.items:
            return None, _address(), str(uuid.uuid4())
        token, address, workflow, _ = random.choice(self.sessions.items)
        return token, address or _address(), workflow

    def healthz(self) -> None:
        self.send("GET", "/api/healthz", LOAD_BALANCER)

    def dashboard(self) -> None:
        token, address, _ = self.signed_in()
        self.send("GET", "/api/workflows", address, token)

    def run(self) -> None:
        who = self.sessions.pick()
        if who is None:
            return self.dashboard()
        token, address, workflow, _ = who
        if random.random() < DELETED:
            workflow = str(uuid.uuid4())
        self.send("POST", "/api/workflows/run", address or _address(), token, json={"workflow_id": workflow})

    def profile(self) -> None:
        token, address, _ = self.signed_in()
        if token is None or random.random() < EXPIRED:
            token = str(uuid.uuid4())
        self.send("GET", "/api/profile", address, token)

    def login(self) -> None:
        if not self.accounts or random.random() < MISTAKE:
            email, address = f"user{random.randint(1, 9999)}@example.com", _address()
            self.send("POST", "/api/auth/login", address, json={"email": email, "password": "wrong-password"})
            return
        email, password, address = random.choice(self.accounts)
        self.send("POST", "/api/auth/login", address, json={"email": email, "password": password})

    def scanner(self) -> None:
        self.send("GET", random.choice(["/wp-login.php", "/.env", "/admin/config.php"]), _address())

    def signup(self) -> None:
        email = f"{secrets.token_hex(4)}@example.com" if random.random() >= MISTAKE else f"{secrets.token_hex(4)}@"
        password, address = secrets.token_urlsafe(12), _address()
        answer = self.send("POST", "/api/auth/signup", address, json={"email": email, "password": password})
        if answer is not None and answer.status_code == 201:
            self.accounts.append((email, password, address))

    def billing_update(self) -> None:
        """A customer updates their billing details: Stripe sends customer.updated to the webhook endpoint.
        A customer Stripe no longer knows (it restarted, when a billing scenario ended) means a fresh list."""
        for _ in range(2):
            try:
                if not self.customers:
                    self.customers = [c.id for c in self.stripe.v1.customers.list({"limit": 100}).data]
                if self.customers:
                    self.stripe.v1.customers.update(random.choice(self.customers),
                                                    {"metadata": {"billing_details_updated": str(int(time.time()))}})
                return
            except stripe.InvalidRequestError:
                self.customers = []
            except stripe.StripeError as exc:   # Stripe down or restarting: ask again next time
                self.customers = []
                sessions.log_error(f"Stripe: {type(exc).__name__}: {exc.user_message or exc}")
                return

    def bug_limit_all(self) -> None:
        self.send("GET", "/api/workflows?limit=all", _address())

    def bug_form_login(self) -> None:
        self.send("POST", "/api/auth/login", _address(), data={"email": "someone@example.com", "password": "x"})

    def bug_camel_case_run(self) -> None:
        token, address, workflow = self.signed_in()
        self.send("POST", "/api/workflows/run", address, token, json={"workflowId": workflow})


def _survive(step) -> None:
    """Run one step; whatever it raises is a log line, never the end of the visits."""
    try:
        step()
    except Exception as exc:
        sessions.log_error(f"{step.__name__}: {type(exc).__name__}: {exc}")


def main() -> None:
    ready = Path(sys.argv[1])
    sessions.LOG_NAME = "visitors"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    visitors = Visitors(dict(os.environ))
    visitors.refresh()
    ready.touch()
    now = time.monotonic()
    due = {"refresh": now + REFRESH_EVERY_S, "signup": now + 1, "billing_update": now + 2}
    every = {"refresh": (REFRESH_EVERY_S,) * 2, "signup": SIGNUP_EVERY_S, "billing_update": WEBHOOK_EVERY_S}
    while True:
        for job, at in due.items():
            if time.monotonic() >= at:
                _survive(getattr(visitors, job))
                due[job] = time.monotonic() + random.uniform(*every[job])
        _survive(visitors.visit)
        time.sleep(random.expovariate(VISITS_PER_MINUTE / 60))


if __name__ == "__main__":
    main()
