"""The sandbox's hosted services (Vercel, Resend, Supabase Auth, status pages) through the library's sources, over
real HTTP: the shapes the runbooks read, credentials checked, and changes (rollback, a domain unverified) real."""

from __future__ import annotations

import json

import httpx
import pytest

from aias_runbooks import paths
from aias_runbooks.sandbox import services
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import auth, status_pages
from aias_runbooks.sources.deploys import Vercel
from aias_runbooks.sources.email import Resend
from aias_runbooks.sources.http import Unreachable


@pytest.fixture
def profile(sandbox):
    return load_environment("sandbox")


@pytest.fixture
def restore_services(sandbox):
    """Whatever a test changes in the services' state is put back afterwards."""
    saved = services.state_file(paths.sandbox_dir()).read_text()
    yield paths.sandbox_dir()
    with services.services_state(paths.sandbox_dir()) as state:
        state.clear()
        state.update(json.loads(saved))


def vercel(profile, token: str | None = None) -> Vercel:
    return Vercel(token or profile.secret("vercel_token").reveal(), profile.urls["vercel_api"], profile.vercel_project)


def test_vercel_lists_production_deployments_and_rolls_back(profile, restore_services):
    deploys = vercel(profile).deployments()
    assert len(deploys) == 6 and set(deploys["state"]) == {"READY"}
    assert deploys["created"].is_monotonic_decreasing and deploys["live"].tolist() == [True] + [False] * 5
    previous = deploys.iloc[1]["id"]
    vercel(profile).rollback(previous, "error spike after deploy")
    after = vercel(profile).deployments()
    assert after.loc[after["live"], "id"].tolist() == [previous]
    with pytest.raises(Unreachable, match="HTTP 404"):
        vercel(profile).rollback("dpl_doesnotexist")


def test_a_wrong_token_is_refused_and_the_token_is_not_in_the_message(profile):
    with pytest.raises(Unreachable, match="HTTP 401") as refused:
        vercel(profile, token="wrong-token-123").deployments()
    assert "wrong-token-123" not in str(refused.value)
    with pytest.raises(Unreachable, match="HTTP 401"):
        Resend("re_wrong", profile.urls["resend_api"]).domains()


def test_resend_sends_only_from_a_verified_domain(profile, restore_services):
    resend = Resend(profile.secret("resend_api_key").reveal(), profile.urls["resend_api"])
    assert resend.domains()[["name", "status"]].values.tolist() == [["aiautomatedsystems.ca", "verified"]]
    send = {"from": "AIAS <hello@aiautomatedsystems.ca>", "to": ["new.user@example.test"], "subject": "Welcome"}
    headers = {"Authorization": f"Bearer {profile.secret('resend_api_key').reveal()}"}
    sent = httpx.post(profile.urls["resend_api"] + "/emails", json=send, headers=headers, timeout=5)
    assert sent.status_code == 200
    emails = resend.emails()
    assert emails.iloc[0]["id"] == sent.json()["id"] and emails.iloc[0]["last_event"] == "delivered"
    with services.services_state(restore_services) as state:
        state["domains"][0]["status"] = "failed"
    refused = httpx.post(profile.urls["resend_api"] + "/emails", json=send, headers=headers, timeout=5)
    assert refused.status_code == 403 and "not verified" in refused.json()["message"]
    assert resend.domains().iloc[0]["status"] == "failed"


def test_status_pages_and_auth_health(profile, restore_services):
    pages = status_pages.summary(status_pages.pages_of(profile.urls))
    assert sorted(pages["service"]) == ["resend", "stripe", "supabase", "vercel"]
    assert set(pages["indicator"]) == {"none"} and pages["error"].isna().all()
    healthy = auth.health(profile.urls["supabase"], profile.secret("supabase_anon_key").reveal())
    assert healthy["ok"] and healthy["name"] == "GoTrue"
    with services.services_state(restore_services) as state:
        state["status"]["supabase"] = "major"
        state["auth"] = "down"
    pages = status_pages.summary(status_pages.pages_of(profile.urls)).set_index("service")
    assert pages.loc["supabase", "indicator"] == "major" and pages.loc["supabase", "incidents"]
    down = auth.health(profile.urls["supabase"], profile.secret("supabase_anon_key").reveal())
    assert not down["ok"] and "HTTP 503" in down["error"]


def test_a_service_that_is_not_there_is_one_line(profile):
    pages = status_pages.summary({"nowhere": "http://127.0.0.1:9"}, timeout_s=2)
    assert pages.iloc[0]["indicator"] is None and "no answer from http://127.0.0.1:9" in pages.iloc[0]["error"]
    assert not auth.health("http://127.0.0.1:9", "key", timeout_s=2)["ok"]
