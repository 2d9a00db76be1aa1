"""incident-system-down through the runner: every subsystem asked at once, SYSTEM_DOWN naming what is down, a full
report when the database is gone, a bounded run when every target hangs, and a status update safe to post."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pandas as pd

from aias_runbooks.checks import system_down
from aias_runbooks.settings import load_environment

from ..helpers import PROBLEMS, code_cells, finding, free_port_base, hanging_port, sandbox_dsn, sandbox_password


def drafted_update(result) -> str:
    """The status-page draft as the report shows it (section 3's markdown output)."""
    (text,) = ["".join(o["data"]["text/markdown"]) for o in code_cells(result)["sd-10"]["outputs"]
               if "text/markdown" in o.get("data", {})]
    return text


def assert_safe_to_post(text: str) -> None:
    """No secret of the profile, no password, no host of any target, no deployment id."""
    profile = load_environment("sandbox")
    secrets = [s.reveal() for s in profile.secrets().values()] + [sandbox_password(), urlsplit(sandbox_dsn()).password]
    assert not [s for s in secrets if s and s in text]
    hosts = {urlsplit(u).hostname for u in [profile.api_base_url, *profile.urls.values()]} | {"localhost", "127.0.0.1"}
    assert not [h for h in hosts if h and h in text], text
    assert "dpl_" not in text and "http" not in text, text


def ran_to_the_end(result) -> None:
    """Every code cell ran without error: the table, the timeline, the events, the draft and the verdict."""
    assert "RUNBOOK_ERROR" not in result.codes, result.verdict["findings"]
    for cell_id, cell in code_cells(result).items():
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], cell_id
    assert any("image/png" in o.get("data", {}) for o in code_cells(result)["sd-07"]["outputs"]), "the timeline chart"


def test_healthy_platform_is_up_and_needs_no_update(quiet, run):
    result = run("incident-system-down")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values())
    assert {"SYSTEM_UP", "API_HEALTHY", "AUTH_HEALTHY", "EXTERNAL_STATUS_OK"} <= result.codes.keys()
    assert "8 of 8" in finding(result, "SYSTEM_UP")["title"], "API, database, Vercel, Auth and four status pages"
    assert {"notebook.ipynb", "report.html", "verdict.json"} == {p.name for p in result.folder.iterdir()}
    ran_to_the_end(result)
    draft = drafted_update(result)
    assert "No update needed" in draft
    assert_safe_to_post(draft)


def test_api_down_is_system_down_naming_the_api(run, scenario):
    scenario("api-down")
    result = run("incident-system-down", "--incident", "INC-77")
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert result.verdict["summary"].startswith("CRITICAL: SYSTEM_DOWN"), "the summary leads the verdict"
    down = finding(result, "SYSTEM_DOWN")
    assert down["severity"] == "CRITICAL" and "the API" in down["title"]
    assert "API" in down["evidence"]["down"] and "Database" in down["evidence"]["up"]
    assert result.codes["API_DOWN"] == "CRITICAL", "the existing code says what is down"
    assert result.codes["AUTH_HEALTHY"] == "OK" and result.codes["EXTERNAL_STATUS_OK"] == "OK"
    ran_to_the_end(result)
    draft = drafted_update(result)
    assert draft.startswith("**Investigating**") and "Web app and API: Major outage" in draft
    assert_safe_to_post(draft)


def test_dead_database_still_gives_a_full_report(run, sandbox):
    closed = free_port_base()    # nothing listens there
    dead = f"postgresql://aias_monitor:{sandbox_password()}@127.0.0.1:{closed}/postgres"
    result = run("incident-system-down", env=os.environ | {"AIAS_SANDBOX_DATABASE_URL": dead})
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert result.codes["DB_UNREACHABLE"] == "CRITICAL"
    down = finding(result, "SYSTEM_DOWN")
    assert down["severity"] == "CRITICAL" and "the database" in down["title"] and "API" in down["evidence"]["up"]
    ran_to_the_end(result)
    assert_safe_to_post(drafted_update(result))
    assert sandbox_password() not in (result.folder / "report.html").read_text()


def test_every_target_hanging_is_checked_at_once_within_its_timeout(run):
    """API, services and database all accept connections and never answer: each is reported as not answering,
    and the check takes about one timeout (plus the database's connect timeout), not one per target."""
    timeout_s = 2
    with hanging_port() as port:
        frozen = f"http://127.0.0.1:{port}"
        env = os.environ | {"AIAS_SANDBOX_API_URL": frozen, "AIAS_SANDBOX_SERVICES_URL": frozen,
                            "AIAS_SANDBOX_DATABASE_URL": f"postgresql://aias_monitor:x@127.0.0.1:{port}/postgres"}
        result = run("incident-system-down", "-p", f"timeout_s={timeout_s}", env=env)
    assert result.proc.returncode == 2, result.proc.stdout + result.proc.stderr
    assert {"API_DOWN", "DB_UNREACHABLE", "AUTH_UNHEALTHY"} <= result.codes.keys()
    assert result.codes["DEPLOYS_UNKNOWN"] == "UNKNOWN" and result.codes["EXTERNAL_STATUS_DEGRADED"] == "WARNING"
    ran_to_the_end(result)
    # nine probes one after the other would take 9 x 2 s plus the database's 5 s connect timeout
    took = code_cells(result)["sd-04"]["metadata"]["papermill"]["duration"]
    assert took < 5 + 2 * timeout_s + 3, f"the check took {took:.1f} s: the probes did not run at once"


def test_a_provider_incident_makes_the_draft_identified_and_names_components_not_providers():
    table = pd.DataFrame([
        {"subsystem": "API", "status": "down", "detail": "no answer from https://api.internal.example:8443"},
        {"subsystem": "Database", "status": "up", "detail": "db.abcd.supabase.co:5432"},
        {"subsystem": "Supabase Auth", "status": "down", "detail": "HTTP 503 from https://abcd.supabase.co"},
        {"subsystem": "Status: supabase", "status": "down", "detail": "Major outage"},
        {"subsystem": "Status: stripe", "status": "degraded", "detail": "Partial outage"}], columns=system_down.COLUMNS)
    draft = system_down.status_update(table)
    assert draft.startswith("**Identified**") and "infrastructure providers" in draft
    assert "- Web app and API: Major outage" in draft and "- Sign-up and login: Partial outage" in draft
    assert "- Billing and payments: Degraded performance" in draft
    assert not [word for word in ("supabase", "internal", "8443", "503", "https") if word in draft.lower()]
