"""incident-data-breach through the runner, against real access logs: logins and failed logins through the sandbox
API's /api/auth/login, API keys and the service-role token presented to it (scenario credential-misuse), and the
guarded revoke through /api/admin/credentials/revoke."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.sandbox.faults import credential_misuse as breach

from ..helpers import admin_session, audit_records, finding, wait_for

HOSTILE_EMAIL = "x\"'<script>alert(1)</script>|*_[a](javascript:alert(1))@example.test"
HOSTILE_AGENT = "Mozilla \"quoted\" 'single' <img src=x onerror=alert(2)> | `code` *bold*"
HOSTILE_STORED_AGENT = HOSTILE_AGENT + "\n| injected | row |\n<script>alert(3)</script>"
ATTACKER = "198.18.99.1"


def api() -> str:
    return dotenv_values(paths.sandbox_dir() / "sandbox.env")["AIAS_SANDBOX_API_URL"]


def profile_status(token: str) -> int:
    return httpx.get(f"{api()}/api/profile", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def truth() -> dict:
    """What the scenario created (ids and addresses), as sandbox/breach.py recorded it."""
    return json.loads((paths.sandbox_dir() / breach.FILE).read_text())


def state(users: list[str], keys: list[str]) -> dict:
    """Sessions (tokens) and refresh tokens per user, revoked_at per key, as the database holds them."""
    with admin_session() as conn:
        sessions = {u: sorted(str(r[0]) for r in conn.execute(
            "SELECT id FROM auth.sessions WHERE user_id = %s", [u])) for u in users}
        refresh = {u: conn.execute("SELECT count(*) FROM auth.refresh_tokens WHERE user_id = %s", [u]).fetchone()[0]
                   for u in users}
        revoked = {k: conn.execute("SELECT revoked_at FROM public.api_keys WHERE id = %s", [k]).fetchone()[0]
                   for k in keys}
    return {"sessions": sessions, "refresh_tokens": refresh, "revoked_at": revoked}


def secrets_of(users: list[str], keys: list[str]) -> set[str]:
    """Every token and hash of these users and keys: none may reach an output file."""
    with admin_session() as conn:
        found = {str(r[0]) for r in conn.execute("SELECT id FROM auth.sessions WHERE user_id = ANY(%s::uuid[])",
                                                 [users])}
        found |= {r[0] for r in conn.execute("SELECT token FROM auth.refresh_tokens WHERE user_id = ANY(%s)",
                                             [users])}
        found |= {r[0] for r in conn.execute("SELECT encrypted_password FROM auth.users WHERE id = ANY(%s::uuid[])",
                                             [users])}
        found |= {r[0] for r in conn.execute("SELECT key_hash FROM public.api_keys WHERE id = ANY(%s::uuid[])",
                                             [keys])}
    return found


def assert_no_secrets(output: Path, values: set[str]) -> None:
    for path in output.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            leaked = [v for v in values if v in text]
            assert not leaked, f"{path.name} holds a token or hash"
            assert "aias_live_" not in text, f"{path.name} holds an API key's prefix"


def incident_document(result) -> str:
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    return next("".join(o["data"]["text/markdown"]) for c in nb["cells"] if c["cell_type"] == "code"
                for o in c["outputs"] if "text/markdown" in o.get("data", {}))


def test_healthy_access_logs_are_ok(run):
    result = run("incident-data-breach")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert result.codes == {"ACCESS_LOGS_OK": "OK"}
    assert finding(result, "ACCESS_LOGS_OK")["evidence"]["logins"] > 0, "the visitors' logins were judged"


def test_credential_misuse_lists_exactly_the_misused_credentials_dry_run_keeps_them_apply_revokes(run, scenario):
    scenario("credential-misuse")
    made = truth()
    victims, keys = made["victims"], [made["revoked_key"], made["live_key"]]
    before, hidden = state(victims, keys), secrets_of(victims, keys)
    stolen = before["sessions"][made["compromised_users"][0]]
    assert len(stolen) == 2 and all(profile_status(t) == 200 for t in stolen), "home and attacker sessions work"

    result = run("incident-data-breach")
    assert result.proc.returncode == 2
    logins = finding(result, "SUSPICIOUS_LOGINS")
    assert logins["severity"] == "CRITICAL"
    assert logins["evidence"]["users"] == made["compromised_users"]
    assert set(logins["evidence"]["targeted_users"]) == set(victims)
    assert logins["evidence"]["ips"] == [made["stuffer"]]
    misuse = finding(result, "CREDENTIAL_MISUSE")
    assert misuse["severity"] == "CRITICAL"
    assert set(misuse["evidence"]["api_keys"]) == set(keys)
    assert misuse["evidence"]["revoked_keys_used"] == [made["revoked_key"]]
    assert misuse["evidence"]["service_role_ips"] == [made["service_origin"]]
    assert set(misuse["evidence"]["ips"]) == {made["key_thief"], made["service_origin"]}
    assert state(victims, keys) == before and not (result.output / "audit.jsonl").exists(), "a dry run revokes nothing"
    assert "None by this run (dry run)" in incident_document(result)

    applied = run("incident-data-breach", "-p", "apply=true", "--operator", "alice", "--incident", "INC-77")
    after = state(victims, keys)
    compromised = made["compromised_users"][0]
    assert after["sessions"][compromised] == [] and after["refresh_tokens"][compromised] == 0
    assert all(after["sessions"][u] == before["sessions"][u] for u in victims if u != compromised), \
        "the other accounts tried keep their sessions"
    assert after["revoked_at"][made["revoked_key"]] == before["revoked_at"][made["revoked_key"]]
    assert before["revoked_at"][made["live_key"]] is None and after["revoked_at"][made["live_key"]] is not None
    assert all(profile_status(t) == 401 for t in stolen), "the old session tokens no longer work"
    records = audit_records(applied)
    assert [r["phase"] for r in records] == ["started", "finished"] and records[1]["operator"] == "alice"
    assert records[0]["criteria"]["users"] == [compromised] and set(records[0]["criteria"]["api_keys"]) == set(keys)
    assert records[1]["outcome"] == "1 user(s) signed out everywhere, 1 API key(s) revoked"
    document = incident_document(applied)
    assert "INC-77" in document and "alice" in document and "1 user\\(s\\) signed out everywhere" in document
    assert_no_secrets(result.output, hidden)


@pytest.fixture
def hostile_account(sandbox):
    """An account whose email is hostile, broken into from ATTACKER with a hostile user agent; undone afterwards as
    the scenario is (its victims' rows and everything logged from 198.18.0.0/15)."""
    password = secrets.token_urlsafe(12)
    signed = httpx.post(f"{api()}/api/auth/signup", headers={"X-Forwarded-For": "192.0.2.240"}, timeout=10,
                        json={"email": HOSTILE_EMAIL, "password": password})
    assert signed.status_code == 201, signed.text
    user = signed.json()["user"]["id"]
    try:
        for _ in range(10):
            httpx.post(f"{api()}/api/auth/login", headers={"X-Forwarded-For": ATTACKER}, timeout=10,
                       json={"email": HOSTILE_EMAIL, "password": "wrong-" + secrets.token_hex(4)})
        token = httpx.post(f"{api()}/api/auth/login", timeout=10,
                           headers={"X-Forwarded-For": ATTACKER, "User-Agent": HOSTILE_AGENT},
                           json={"email": HOSTILE_EMAIL, "password": password}).json()["access_token"]
        with admin_session() as conn:
            conn.execute("UPDATE auth.sessions SET user_agent = %s WHERE id = %s", [HOSTILE_STORED_AGENT, token])
            wait_for(lambda: conn.execute("SELECT count(*) FROM public.api_requests WHERE ip = %s AND status = 400",
                                          [ATTACKER]).fetchone()[0] == 10, 10, "the API to log the failed logins")
        yield user
    finally:
        (paths.sandbox_dir() / breach.FILE).write_text(json.dumps({"victims": [user]}))
        with admin_session() as conn:
            breach.reset(paths.sandbox_dir(), conn)


def test_hostile_email_and_user_agent_are_escaped_in_the_report_and_the_document(run, hostile_account):
    result = run("incident-data-breach")
    assert result.proc.returncode == 2
    logins = finding(result, "SUSPICIOUS_LOGINS")
    assert logins["severity"] == "CRITICAL" and logins["evidence"]["users"] == [hostile_account]
    assert logins["evidence"]["emails"] == [HOSTILE_EMAIL.lower()]
    html = (result.folder / "report.html").read_text()
    for raw in ("<script>alert(", "<img src=x", "javascript:alert(1))</a"):
        assert raw not in html, f"unescaped {raw!r} in report.html"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html, \
        "the email and the user agent are in the report, as text"
    document = incident_document(result)
    table = [line for line in document.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in table) and "| injected | row |" not in document
    assert "\\<script\\>" in document and "\\<img src=x onerror=alert\\(2\\)\\>" in document
