"""The credential-misuse fault: credentials used by someone else, through the sandbox API's real endpoints.

- Credential stuffing: four people signed up two days ago and logged in from home (their history is dated back,
  so their home addresses are their baseline). An attacker at STUFFER tries wrong passwords on each of them and on
  a few unknown emails, then logs in as one of them with the right (leaked) password: a session of its own.
- Leaked API keys: a tenant's key rotated (revoked) two days ago is presented from KEY_THIEF (refused, 401, logged
  with its key id), and so is the same tenant's live Production key, which works.
- A leaked service-role token: the admin token calls an admin endpoint from SERVICE_ORIGIN, outside known_origins.

`breach.json` in the sandbox folder holds what was created (ids and addresses only, never a password, key or
token): the tests compare the runbook's findings with it, and `reset` undoes the scenario with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ...errors import SandboxError
from .base import Context, remove_users

STUFFER = "198.18.7.66"          # RFC 2544 benchmarking addresses: never one of the visitors'
KEY_THIEF = "198.18.22.9"
SERVICE_ORIGIN = "198.18.40.1"
ATTACK_NET = "198.18.0.0/15"
VICTIMS = 4
WRONG_PER_VICTIM = 3
UNKNOWN_EMAILS = 4
ATTACKER_AGENT = "python-requests/2.31.0"
REQUEST_ID_PREFIX = "scenario-breach-"
LOG_TIMEOUT_S = 30
FILE = "breach.json"


class _Client:
    def __init__(self, env: dict[str, str]) -> None:
        self.api, self.admin = env["AIAS_SANDBOX_API_URL"], env["AIAS_SANDBOX_ADMIN_TOKEN"]
        self.http = httpx.Client(timeout=10)
        self.sent = 0

    def send(self, method: str, path: str, address: str, token: str | None = None,
             agent: str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/125.0", **kwargs) -> httpx.Response:
        headers = {"X-Forwarded-For": address, "User-Agent": agent,
                   "X-Request-Id": REQUEST_ID_PREFIX + secrets.token_hex(8)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.sent += 1
        return self.http.request(method, self.api + path, headers=headers, **kwargs)


def _victims(client: _Client, conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Sign up and log in VICTIMS people from their homes; then date that history two days back."""
    people = []
    for i in range(VICTIMS):
        home, email, password = f"192.0.2.{230 + i}", f"breach.{secrets.token_hex(4)}@example.test", \
            secrets.token_urlsafe(12)
        signed = client.send("POST", "/api/auth/signup", home, json={"email": email, "password": password})
        if signed.status_code != 201:
            raise SandboxError(f"scenario credential-misuse: signup answered HTTP {signed.status_code}")
        client.send("POST", "/api/auth/login", home, json={"email": email, "password": password})
        people.append({"user_id": signed.json()["user"]["id"], "email": email, "home": home, "password": password})
    ids = [p["user_id"] for p in people]
    _wait_logged(client, conn)   # their requests too move into the baseline: the addresses they are known at
    with conn.transaction():
        conn.execute("UPDATE auth.audit_log_entries SET created_at = created_at - interval '2 days' "
                     "WHERE payload ->> 'actor_id' = ANY(%s)", [ids])
        conn.execute("UPDATE auth.sessions SET created_at = created_at - interval '2 days', "
                     "updated_at = updated_at - interval '2 days' WHERE user_id = ANY(%s::uuid[])", [ids])
        conn.execute("UPDATE public.api_requests SET created_at = created_at - interval '2 days' "
                     "WHERE user_id = ANY(%s::uuid[])", [ids])
        conn.execute("UPDATE auth.users SET created_at = created_at - interval '2 days', "
                     "last_sign_in_at = last_sign_in_at - interval '2 days' WHERE id = ANY(%s::uuid[])", [ids])
    return people


def _stuffing(client: _Client, people: list[dict[str, Any]]) -> str:
    """Wrong passwords on every victim and a few unknown emails from STUFFER, then one login with the right one."""
    for person in people:
        for _ in range(WRONG_PER_VICTIM):
            client.send("POST", "/api/auth/login", STUFFER, agent=ATTACKER_AGENT,
                        json={"email": person["email"], "password": secrets.token_urlsafe(9)})
    for _ in range(UNKNOWN_EMAILS):
        client.send("POST", "/api/auth/login", STUFFER, agent=ATTACKER_AGENT,
                    json={"email": f"{secrets.token_hex(4)}@example.test", "password": secrets.token_urlsafe(9)})
    victim = people[-1]
    answer = client.send("POST", "/api/auth/login", STUFFER, agent=ATTACKER_AGENT,
                         json={"email": victim["email"], "password": victim["password"]})
    if answer.status_code != 200:
        raise SandboxError(f"scenario credential-misuse: the stuffed login answered HTTP {answer.status_code}")
    return victim["user_id"]


def _keys(client: _Client, conn: psycopg.Connection) -> dict[str, str]:
    """Two keys of one tenant, a rotated (revoked) one and its live successor, both presented from KEY_THIEF."""
    tenant = conn.execute("SELECT id FROM public.tenants ORDER BY slug LIMIT 1").fetchone()[0]
    made = {}
    for label, name, revoked in [("revoked", "CI pipeline (rotated)", True), ("live", "Production", False)]:
        key = f"aias_live_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"
        made[label] = str(conn.execute(
            "INSERT INTO public.api_keys (tenant_id, name, prefix, key_hash, created_at, last_used_at, revoked_at) "
            "VALUES (%s, %s, %s, %s, now() - interval '40 days', now() - interval '3 days', "
            "CASE WHEN %s THEN now() - interval '2 days' END) RETURNING id",
            [tenant, name, key[:18], hashlib.sha256(key.encode()).hexdigest(), revoked]).fetchone()[0])
        for _ in range(2):
            client.send("GET", "/api/workflows", KEY_THIEF, token=key, agent="curl/8.5.0")
    return made


def make_activity(folder: Path, env: dict[str, str], conn: psycopg.Connection) -> dict[str, Any]:
    """Inject the misuse, wait (bounded) until the API has logged every request of it, and record breach.json."""
    client = _Client(env)
    people = _victims(client, conn)
    compromised = _stuffing(client, people)
    keys = _keys(client, conn)
    client.send("POST", "/api/admin/rate-limits/clear", SERVICE_ORIGIN, token=client.admin, agent="curl/8.5.0",
                json={"key": f"ip:{SERVICE_ORIGIN}"})
    _wait_logged(client, conn)
    done = {"victims": [p["user_id"] for p in people], "compromised_users": [compromised],
            "stuffer": STUFFER, "key_thief": KEY_THIEF, "service_origin": SERVICE_ORIGIN,
            "revoked_key": keys["revoked"], "live_key": keys["live"]}
    (folder / FILE).write_text(json.dumps(done, indent=1))
    return done


def _wait_logged(client: _Client, conn: psycopg.Connection) -> None:
    """Until the API has logged every request sent so far (it logs after answering), bounded."""
    deadline = time.monotonic() + LOG_TIMEOUT_S
    while _logged(conn) < client.sent:
        if time.monotonic() > deadline:
            raise SandboxError(f"scenario credential-misuse: the sandbox API logged {_logged(conn)} of "
                               f"{client.sent} requests in {LOG_TIMEOUT_S} s (see logs/api.log)")
        time.sleep(0.1)


def _logged(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM public.api_requests WHERE request_id LIKE %s",
                        [REQUEST_ID_PREFIX + "%"]).fetchone()[0]


def reset(folder: Path, conn: psycopg.Connection) -> None:
    """Undo it: the victims (and their sessions), the keys, and every log line of the scenario are gone."""
    path = folder / FILE
    done = json.loads(path.read_text()) if path.is_file() else {}
    users, keys = done.get("victims", []), [k for k in (done.get("revoked_key"), done.get("live_key")) if k]
    with conn.transaction():
        conn.execute("DELETE FROM public.api_requests WHERE request_id LIKE %s OR user_id = ANY(%s::uuid[]) "
                     "OR api_key_id = ANY(%s::uuid[]) OR ip <<= %s::cidr",
                     [REQUEST_ID_PREFIX + "%", users, keys, ATTACK_NET])
        conn.execute("DELETE FROM auth.audit_log_entries WHERE ip_address LIKE '198.18.%'")
        remove_users(conn, users)
        conn.execute("DELETE FROM public.api_keys WHERE id = ANY(%s::uuid[])", [keys])
        conn.execute("DELETE FROM public.rate_limits WHERE key LIKE 'ip:198.18.%' OR key LIKE 'ip:192.0.2.23_'")
    path.unlink(missing_ok=True)


class CredentialMisuse:
    """Stolen credentials in use (make_activity), undone with everything it created (reset)."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make_activity(ctx.folder, ctx.env, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(ctx.folder, conn)
