"""The sandbox's hosted services (Vercel, Resend, Supabase Auth, status pages) through the library's sources, over
real HTTP: the shapes the runbooks read, credentials checked, and changes (rollback, a domain unverified) real."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from aias_runbooks import paths
from aias_runbooks.sandbox.emulators.hosted import state as services
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import auth, integrations, status_pages
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


def test_resend_lists_domains_as_its_api_does(profile, restore_services):
    """GET /domains answers resend-openapi's ListDomainsResponse ({"object": "list", "has_more": ..., "data": [...]});
    an account with no sending domain answers an empty list, which the source reads as no domain, not as an error."""
    key = profile.secret("resend_api_key").reveal()
    listed = httpx.get(profile.urls["resend_api"] + "/domains", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    answer = listed.json()
    assert (answer["object"], answer["has_more"]) == ("list", False)
    assert [d["name"] for d in answer["data"]] == ["aiautomatedsystems.ca"]
    with services.services_state(restore_services) as state:
        state["domains"] = []
    empty = httpx.get(profile.urls["resend_api"] + "/domains", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert empty.json() == {"object": "list", "has_more": False, "data": []}
    assert Resend(key, profile.urls["resend_api"]).domains().empty


def test_resend_lists_emails_as_its_api_does_and_bounces_where_told(profile, restore_services):
    """GET /emails answers resend-openapi's ListEmailsResponse ({"object": "list", "has_more": ..., "data": [Email]}),
    each Email's `to` an array (POST /emails takes a string or an array) and its `last_event` from the spec's enum;
    mail to a domain in the state's `bouncing` list ends `bounced`, the rest `delivered`."""
    key = profile.secret("resend_api_key").reveal()
    headers, url = {"Authorization": f"Bearer {key}"}, profile.urls["resend_api"] + "/emails"
    with services.services_state(restore_services) as state:
        state["bouncing"] = ["globex.example"]
    sent = {}
    for to in ("ada@globex.example", ["bob@example.test"]):     # a string or an array, as the spec allows
        send = {"from": "AIAS <hello@aiautomatedsystems.ca>", "to": to, "subject": "Welcome"}
        sent[str(to).strip("[']")] = httpx.post(url, json=send, headers=headers, timeout=5).json()["id"]
    listed = httpx.get(url, params={"limit": 2}, headers=headers, timeout=5).json()
    assert listed["object"] == "list" and isinstance(listed["has_more"], bool) and len(listed["data"]) == 2
    by_id = {e["id"]: e for e in listed["data"]}
    assert all(e["object"] == "email" and isinstance(e["to"], list) for e in by_id.values())
    assert (by_id[sent["ada@globex.example"]]["to"], by_id[sent["ada@globex.example"]]["last_event"]) == \
        (["ada@globex.example"], "bounced")
    assert by_id[sent["bob@example.test"]]["last_event"] == "delivered"
    emails = Resend(key, profile.urls["resend_api"]).emails(limit=2).set_index("id")
    assert emails.loc[sent["ada@globex.example"], "last_event"] == "bounced"


@pytest.fixture
def recorder():
    """An HTTP server on 127.0.0.1 that answers 200 `{}` to every GET and POST and records each request's raw path
    (as sent, percent-encoding and all)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = answer  # noqa: N815 - http.server's names

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_a_resend_answer_without_its_list_of_domains_is_not_an_empty_list(recorder):
    base, _ = recorder
    with pytest.raises(Unreachable, match="no `data` list"):
        Resend("re_key", base).domains()


# An integration's name is the platform's data (workflows name it): as a path segment it must stay one
HOSTILE_NAMES = {"../admin": "..%2Fadmin", "..": "%2E%2E", ".": "%2E", "a/b?x=1#top": "a%2Fb%3Fx%3D1%23top",
                 "hub spot": "hub%20spot", "%2e%2e%2fadmin": "%252e%252e%252fadmin", "slack": "slack"}


def test_an_integration_name_is_one_path_segment_of_the_probe(recorder):
    base, seen = recorder
    probed = integrations.probe(f"{base}/integrations", list(HOSTILE_NAMES), 5.0)
    assert seen == [f"/integrations/{segment}" for segment in HOSTILE_NAMES.values()]
    assert probed["ok"].all() and probed["integration"].tolist() == list(HOSTILE_NAMES)


def test_a_deployment_id_and_a_project_are_one_path_segment_each(recorder):
    base, seen = recorder
    client = Vercel("token", base, project="prj/../other")
    client.deployments()
    client.rollback("../../v9/projects/other")
    assert seen[1:] == ["/v9/projects/prj%2F..%2Fother",
                        "/v1/projects/prj%2F..%2Fother/rollback/..%2F..%2Fv9%2Fprojects%2Fother"]
