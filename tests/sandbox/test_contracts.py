"""The sandbox's emulators held to the vendors' own contracts, and the sources held to what the vendors promise.

Each emulator endpoint the runbooks call is called over real HTTP and its answer validated (jsonschema) against the
vendor's published contract stored under tests/sandbox/contracts/<vendor>/ (each file names its source: Resend's and
Supabase Auth's OpenAPI documents, the response models of Vercel's official SDK, Statuspage's public API pages,
Slack's webhook documentation). Each source is then pointed at a tiny real HTTP server answering with only what the
vendor's contract requires, and must still read it: no crash, and the finding a user would expect.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from aias_runbooks import paths
from aias_runbooks.checks import errors, signups
from aias_runbooks.sandbox.emulators.hosted import state as services
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import auth, status_pages
from aias_runbooks.sources.deploys import Vercel
from aias_runbooks.sources.email import Resend

CONTRACTS = Path(__file__).parent / "contracts"


def contract(path: str) -> dict[str, Any]:
    return yaml.safe_load((CONTRACTS / path).read_text())


def violations(document: dict[str, Any], ref: str, body: Any) -> list[str]:
    """Every way body breaks the schema at ref (a JSON pointer into document: its $defs or components)."""
    schema = {"$ref": ref} | {k: document[k] for k in ("$defs", "components") if k in document}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(answer)'}: {e.message}" for e in validator.iter_errors(body)]


def operation_schema(document: dict[str, Any], path: str, method: str, status: int | str) -> dict[str, Any]:
    """The JSON schema of one operation's answer in an OpenAPI document (status keys may be int or str)."""
    responses = document["paths"][path][method]["responses"]
    answer = responses.get(status, responses.get(str(status)))
    assert answer is not None, f"{method.upper()} {path} documents no {status} answer"
    return answer["content"]["application/json"]["schema"]


@pytest.fixture
def profile(sandbox):
    return load_environment("sandbox")


@pytest.fixture
def restore_services(sandbox) -> Iterator[Path]:
    """Whatever a test changes in the services' state is put back afterwards."""
    saved = services.state_file(paths.sandbox_dir()).read_text()
    yield paths.sandbox_dir()
    with services.services_state(paths.sandbox_dir()) as state:
        state.clear()
        state.update(json.loads(saved))


def bearer(profile, secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {profile.secret(secret).reveal()}"}


# --- Vercel: the response models of @vercel/sdk -------------------------------------------------------------------

VERCEL = contract("vercel/rest-api.yaml")


def test_vercel_deployments_answer_as_vercels_sdk_models_them(profile):
    base, project = profile.urls["vercel_api"], profile.vercel_project
    answer = httpx.get(f"{base}/v6/deployments", headers=bearer(profile, "vercel_token"),
                       params={"projectId": project, "target": "production", "limit": 20})
    assert answer.status_code == 200
    assert violations(VERCEL, "#/$defs/GetDeploymentsResponseBody", answer.json()) == []
    assert len(answer.json()["deployments"]) == 6


def test_vercel_project_answers_as_vercels_sdk_models_it(profile):
    answer = httpx.get(f"{profile.urls['vercel_api']}/v9/projects/{profile.vercel_project}",
                       headers=bearer(profile, "vercel_token"))
    assert answer.status_code == 200
    assert violations(VERCEL, "#/$defs/GetProjectResponseBody", answer.json()) == []
    assert answer.json()["targets"]["production"]["id"].startswith("dpl_")


def test_vercel_rollback_answers_201_with_no_body(profile, restore_services):
    deployments = httpx.get(f"{profile.urls['vercel_api']}/v6/deployments", headers=bearer(profile, "vercel_token"),
                            params={"target": "production"}).json()["deployments"]
    answer = httpx.post(f"{profile.urls['vercel_api']}/v1/projects/{profile.vercel_project}/rollback/"
                        f"{deployments[1]['uid']}", headers=bearer(profile, "vercel_token"),
                        params={"description": "contract test"})
    assert (answer.status_code, answer.content) == (201, b"")


def minimal_vercel() -> dict[str, tuple[int, str, bytes]]:
    """Only what Vercel's models require: no state, readyState, target, createdAt, ready, meta or username; a
    project without `targets`."""
    deployment = {"uid": "dpl_min", "name": "app", "projectId": "prj_min", "url": "app-min.vercel.app",
                  "created": 1_700_000_000_000, "type": "LAMBDAS", "creator": {"uid": "usr_1"}, "inspectorUrl": None}
    listing = {"pagination": {"count": 1, "next": None, "prev": None}, "deployments": [deployment]}
    project = {"accountId": "team_1", "alias": [], "deploymentExpiration": {}, "directoryListing": False,
               "id": "prj_min", "name": "app", "nodeVersion": "22.x",
               "resourceConfig": {"functionDefaultRegions": ["iad1"]},
               "defaultResourceConfig": {"functionDefaultRegions": ["iad1"]}}
    assert violations(VERCEL, "#/$defs/GetDeploymentsResponseBody", listing) == []
    assert violations(VERCEL, "#/$defs/GetProjectResponseBody", project) == []
    return {"/v6/deployments": as_json(listing), "/v9/projects/prj_min": as_json(project)}


def test_the_vercel_source_reads_an_answer_holding_only_the_required_fields(vendor):
    base = vendor(minimal_vercel())
    deploys = Vercel("token", base, "prj_min").deployments()
    row = deploys.iloc[0]
    assert (len(deploys), row["id"], row["live"], row["commit"]) == (1, "dpl_min", False, "")
    assert row["created"].year == 2023 and deploys["state"].isna().all() and deploys["ready"].isna().all()


# --- Resend: its OpenAPI document ----------------------------------------------------------------------------------

RESEND = contract("resend/resend.yaml")


def test_resend_domains_answer_as_resends_openapi_documents(profile):
    answer = httpx.get(f"{profile.urls['resend_api']}/domains", headers=bearer(profile, "resend_api_key"))
    assert answer.status_code == 200
    assert violations(RESEND, "#/components/schemas/ListDomainsResponse", answer.json()) == []
    assert operation_schema(RESEND, "/domains", "get", 200) == {"$ref": "#/components/schemas/ListDomainsResponse"}


def test_resend_emails_answer_as_resends_openapi_documents(profile, restore_services):
    """An email sent with only the request's required fields (from, to, subject) is listed and read back as
    Resend's Email schema says: fields it does not have are absent, never null."""
    base, headers = profile.urls["resend_api"], bearer(profile, "resend_api_key")
    sent = {"from": "AIAS <noreply@aiautomatedsystems.ca>", "to": ["ops@example.com"], "subject": "Contract"}
    assert violations(RESEND, "#/components/schemas/SendEmailRequest", sent) == []
    answer = httpx.post(f"{base}/emails", headers=headers, json=sent)
    assert answer.status_code == 200
    assert violations(RESEND, "#/components/schemas/SendEmailResponse", answer.json()) == []
    listed = httpx.get(f"{base}/emails", headers=headers)
    assert listed.status_code == 200
    assert violations(RESEND, "#/components/schemas/ListEmailsResponse", listed.json()) == []
    one = httpx.get(f"{base}/emails/{answer.json()['id']}", headers=headers)
    assert one.status_code == 200
    assert violations(RESEND, "#/components/schemas/Email", one.json()) == []
    assert one.json()["last_event"] == "delivered"
    example = RESEND["components"]["schemas"]["Email"]["properties"]["created_at"]["example"]
    assert shape(one.json()["created_at"]) == shape(example) == "dddd-dd-dd dd:dd:dd.dddddd+dd"


def shape(timestamp: str) -> str:
    """A timestamp's format, its digits masked: Resend's ('2023-04-03 22:13:42.674981+00') is not ISO 8601's."""
    return re.sub(r"\d", "d", timestamp)


def test_the_resend_source_reads_an_answer_holding_only_what_resend_documents(vendor):
    """Resend's schemas require no field: a domain without its region, an email without to, from or last_event,
    Resend's own timestamp format ('2023-04-03 22:13:42.674981+00')."""
    domains = {"object": "list", "has_more": False,
               "data": [{"id": "d1", "name": "example.com", "status": "not_started"}]}
    emails = {"object": "list", "has_more": False,
              "data": [{"id": "e1", "created_at": "2023-04-03 22:13:42.674981+00"}]}
    assert violations(RESEND, "#/components/schemas/ListDomainsResponse", domains) == []
    assert violations(RESEND, "#/components/schemas/ListEmailsResponse", emails) == []
    resend = Resend("re_key", vendor({"/domains": as_json(domains), "/emails": as_json(emails)}))
    found = signups.email_domains(resend.domains())
    assert [f.code for f in found] == ["EMAIL_DOMAIN_UNVERIFIED"] and "example.com is not_started" in found[0].title
    read = resend.emails()
    assert read.iloc[0]["created_at"].year == 2023 and read["last_event"].isna().all()
    assert signups.bounce_domains(read) == {}


# --- Supabase Auth: GoTrue's OpenAPI document ----------------------------------------------------------------------

SUPABASE_AUTH = contract("supabase_auth/openapi.yaml")


def test_auth_health_answers_as_gotrues_openapi_documents(profile, restore_services):
    url = f"{profile.urls['supabase']}/auth/v1/health"
    headers = {"apikey": profile.secret("supabase_anon_key").reveal()}
    answer = httpx.get(url, headers=headers)
    assert answer.status_code == 200
    schema = operation_schema(SUPABASE_AUTH, "/health", "get", 200)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(answer.json())) == []
    with services.services_state(restore_services) as state:
        state["auth"] = "down"
    down = httpx.get(url, headers=headers)
    assert down.status_code in SUPABASE_AUTH["paths"]["/health"]["get"]["responses"] and down.status_code >= 500


def test_the_auth_source_reads_a_health_answer_without_its_optional_fields(vendor):
    """GoTrue's /health answer has no required field; a 5XX may not be JSON (its document says so)."""
    base = vendor({"/auth/v1/health": as_json({}),
                   "/down/auth/v1/health": (503, "text/html", b"<html>upstream unavailable</html>")})
    assert auth.health(base, "anon") | {"latency_ms": 0} == {"ok": True, "latency_ms": 0, "version": None,
                                                             "name": None}
    down = auth.health(f"{base}/down", "anon")
    assert down["ok"] is False and "HTTP 503" in down["error"]


# --- statuspage.io: the public page API ----------------------------------------------------------------------------

STATUSPAGE = contract("statuspage/summary.yaml")


@pytest.mark.parametrize("indicator", ["none", "major"])
def test_status_pages_answer_as_statuspage_documents(profile, restore_services, indicator):
    with services.services_state(restore_services) as state:
        state["status"]["stripe"] = indicator
    base = profile.urls["status_stripe"]
    summary = httpx.get(f"{base}/api/v2/summary.json")
    assert summary.status_code == 200
    assert violations(STATUSPAGE, "#/$defs/Summary", summary.json()) == []
    assert len(summary.json()["incidents"]) == (indicator != "none")
    rollup = httpx.get(f"{base}/api/v2/status.json")
    assert rollup.status_code == 200
    assert violations(STATUSPAGE, "#/$defs/StatusRollup", rollup.json()) == []


def test_the_status_page_source_reads_a_summary_holding_only_the_documented_fields(vendor):
    page = {"id": "p1", "name": "Stripe", "url": "https://status.stripe.com", "updated_at": "2026-12-07T03:00:00Z"}
    component = {"id": "c1", "name": "API", "status": "partial_outage", "created_at": "2014-05-03T01:22:07.274Z",
                 "updated_at": "2014-05-14T20:34:43.340Z", "position": 1, "description": None, "page_id": "p1"}
    incident = {"id": "i1", "name": "Elevated API errors", "status": "investigating", "impact": "major",
                "created_at": "2026-12-07T02:50:00Z", "updated_at": "2026-12-07T02:55:00Z",
                "shortlink": "https://stspg.io/x", "incident_updates": []}
    summary = {"page": page, "status": {"indicator": "major", "description": "Partial System Outage"},
               "components": [component], "incidents": [incident], "scheduled_maintenances": []}
    assert violations(STATUSPAGE, "#/$defs/Summary", summary) == []
    pages = status_pages.summary({"stripe": vendor({"/api/v2/summary.json": as_json(summary)})})
    row = pages.iloc[0]
    assert (row["indicator"], row["incidents"], row["degraded_components"]) == ("major", "Elevated API errors", "API")
    found = errors.external(pages)
    assert [f.code for f in found] == ["EXTERNAL_STATUS_DEGRADED"] and "stripe" in found[0].title


# --- Slack: incoming webhooks ----------------------------------------------------------------------------------------

SLACK = contract("slack/incoming-webhooks.yaml")


def test_the_slack_webhook_answers_as_slack_documents(profile, restore_services):
    url = profile.secret("slack_webhook_url").reveal()
    ok = SLACK["responses"]["ok"]
    for message in ({"text": "runbook OK"}, {"blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                                       "text": "runbook OK"}}]}):
        assert list(jsonschema.Draft202012Validator(SLACK["request"]).iter_errors(message)) == []
        answer = httpx.post(url, json=message)
        assert (answer.status_code, answer.text) == (ok["status"], ok["body"]), message
        assert answer.headers["content-type"].startswith(ok["content_type"])
    garbled = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert (garbled.status_code, garbled.text) == (SLACK["responses"]["errors"]["invalid_payload"], "invalid_payload")
    wrong = httpx.post(url.rstrip("/") + "x/", json={"text": "hi"})
    assert (wrong.status_code, wrong.text) == (SLACK["responses"]["errors"]["invalid_token"], "invalid_token")


# --- a tiny vendor: canned answers over real HTTP --------------------------------------------------------------------

def as_json(body: Any) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(body).encode()


@pytest.fixture
def vendor() -> Iterator:
    """serve({path: (status, content type, body)}) -> the base URL of a real HTTP server answering those paths
    (the query string ignored), 404 elsewhere."""
    servers: list[ThreadingHTTPServer] = []

    def serve(answers: dict[str, tuple[int, str, bytes]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                status, kind, body = answers.get(self.path.split("?", 1)[0], (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer  # noqa: N815 - http.server's names

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# --- Stripe (localstripe): the fields the billing runbooks read, as Stripe's SDK models them ------------------------

# What sources/stripe.py reads of each Stripe object (besides `id`), by the SDK's class name.
STRIPE_READS = {"Subscription": ["customer", "metadata", "status", "items", "plan", "created",
                                 "current_period_end"],
                "SubscriptionItem": ["price", "plan", "current_period_end"], "Price": ["metadata", "lookup_key"],
                "Plan": ["metadata"],
                "Customer": ["email", "metadata"],
                "Event": ["type", "created", "data", "pending_webhooks"],
                "Invoice": ["customer", "customer_email", "currency", "amount_due", "attempt_count", "charge",
                            "payment_intent", "subscription", "parent"],
                "Charge": ["failure_code"], "PaymentIntent": ["last_payment_error"],
                "WebhookEndpoint": ["url", "status", "enabled_events"]}
# Read at the pinned API version (sources/stripe.py STRIPE_VERSION, 2025-02-24.acacia) and gone from the models of
# the installed SDK's newer API version: invoices lost charge, payment_intent and subscription (now
# parent.subscription_details and payments), subscriptions current_period_end (now on each item) and plan (the
# legacy single-plan field, read only when an item has neither price nor plan).
STRIPE_PINNED_ONLY = {("Invoice", "charge"), ("Invoice", "payment_intent"), ("Invoice", "subscription"),
                      ("Subscription", "current_period_end"), ("Subscription", "plan")}


def sdk_fields(name: str) -> set[str]:
    import stripe
    return {f for klass in getattr(stripe, name).__mro__ for f in getattr(klass, "__annotations__", {})}


def test_every_stripe_field_the_runbooks_read_is_one_stripes_sdk_documents():
    """Each field is in the SDK's model of its object, or is one of the pinned version's that the newer models
    dropped (and then it must really be gone from them: the list stays exact)."""
    undocumented = {(name, f) for name, fields in STRIPE_READS.items() for f in fields if f not in sdk_fields(name)}
    assert undocumented == STRIPE_PINNED_ONLY


def test_localstripe_answers_carry_the_fields_the_runbooks_read(profile):
    """Over real HTTP at the pinned version: localstripe's subscriptions, their items and customers carry each
    field the runbooks read. localstripe predates Prices: its items carry the `plan` Stripe's SDK still documents
    on an item (the runbooks read the tier from price, else plan), with the tier in its metadata."""
    import stripe

    from aias_runbooks.sources.stripe import STRIPE_VERSION
    client = stripe.StripeClient(profile.secret("stripe_secret_key").reveal(), stripe_version=STRIPE_VERSION,
                                 base_addresses={"api": profile.stripe_api_base}, max_network_retries=0)

    def first(path: str) -> dict[str, Any]:
        listed = json.loads(client.raw_request("get", path, limit=1).body)["data"]
        assert listed, f"localstripe lists no {path}"
        return listed[0]

    subscription, customer = first("/v1/subscriptions"), first("/v1/customers")
    item = subscription["items"]["data"][0]
    needed = {"Subscription": ["customer", "metadata", "status", "items", "created", "current_period_end"],
              "Customer": STRIPE_READS["Customer"]}
    missing = {f"{name}.{f}" for name, obj in (("Subscription", subscription), ("Customer", customer))
               for f in needed[name] if f not in obj}
    assert missing == set()
    priced = item.get("price") or item.get("plan")
    assert priced and priced["id"] and priced["metadata"]["tier"] in ("pro", "enterprise")


def test_the_fields_the_sources_read_are_ones_the_vendors_document():
    """What deploys.py, email.py, auth.py and status_pages.py read of each answer is a property of the vendor's
    schema for it: nothing the vendor does not promise (all but the few required ones may be absent, which the
    minimal-answer tests above cover)."""
    def properties(document: dict[str, Any], *pointer: str) -> set[str]:
        node: Any = document
        for key in pointer:
            node = node[key]
        return set(node["properties"])

    deployment = properties(VERCEL, "$defs", "Deployment")
    assert {"uid", "readyState", "state", "target", "createdAt", "created", "ready", "meta", "creator",
            "url"} <= deployment
    assert "username" in VERCEL["$defs"]["Deployment"]["properties"]["creator"]["properties"]
    assert {"targets"} <= properties(VERCEL, "$defs", "GetProjectResponseBody")
    assert {"id"} <= properties(VERCEL, "$defs", "ProjectTarget")
    assert {"id", "name", "status", "region", "created_at"} <= properties(RESEND, "components", "schemas",
                                                                           "ListDomainsItem")
    assert {"data"} <= properties(RESEND, "components", "schemas", "ListDomainsResponse")
    assert {"id", "to", "from", "subject", "created_at", "last_event"} <= properties(RESEND, "components",
                                                                                      "schemas", "Email")
    assert {"version", "name"} <= set(operation_schema(SUPABASE_AUTH, "/health", "get", 200)["properties"])
    assert {"status", "incidents", "components"} <= properties(STATUSPAGE, "$defs", "Summary")
    assert {"indicator", "description"} <= properties(STATUSPAGE, "$defs", "Status")
    assert {"name", "status"} <= properties(STATUSPAGE, "$defs", "Component")
    assert {"name"} <= properties(STATUSPAGE, "$defs", "Incident")


def test_the_stripe_source_reads_an_event_holding_only_its_required_fields(vendor):
    """An event with only the fields Stripe's Event always carries (id, object, api_version, created, data,
    livemode, pending_webhooks, request, type: the stripe SDK's Event model; Stripe's OpenAPI document is not stored
    here), its object without customer or metadata: read, not a crash."""
    from datetime import datetime, timezone

    from aias_runbooks.sources.stripe import StripeClient
    event = {"id": "evt_1", "object": "event", "api_version": None, "created": 1_700_000_000, "livemode": False,
             "pending_webhooks": 0, "request": None, "type": "customer.subscription.deleted",
             "data": {"object": {"id": "sub_1", "object": "subscription"}}}
    base = vendor({"/v1/events": as_json({"object": "list", "url": "/v1/events", "has_more": False,
                                          "data": [event]})})
    events = StripeClient("sk_test_contract", base).events(datetime(2023, 1, 1, tzinfo=timezone.utc),
                                                           ["customer.subscription.deleted"])
    row = events.iloc[0]
    assert (row["id"], row["object_id"], row["subscription"], row["pending_webhooks"]) == ("evt_1", "sub_1", "sub_1", 0)
    assert row["customer"] is None and row["user_id"] is None and row["created"].year == 2023


# --- PagerDuty: Events API v2 and the REST API's incident notes -----------------------------------------------------

PD_EVENTS = contract("pagerduty/events-v2.yaml")
PD_NOTES = contract("pagerduty/rest-incident-notes.yaml")


def pd_trigger(profile, dedup: str, **changed: Any) -> dict[str, Any]:
    """A valid trigger, or one whose payload has the `changed` fields (None: left out)."""
    payload = {"summary": "health-check on sandbox is CRITICAL", "source": "sandbox", "severity": "critical",
               "custom_details": {"status": "CRITICAL"}} | changed
    return {"routing_key": profile.secret("pagerduty_routing_key").reveal(), "event_action": "trigger",
            "dedup_key": dedup, "links": [{"href": "https://runbooks.example.test/r/report.html", "text": "Report"}],
            "payload": {k: v for k, v in payload.items() if v is not None}}


def test_pagerduty_events_answer_as_pagerduty_documents(profile, restore_services):
    """A valid trigger and resolve (valid by the stored schema) are 202 Success and open, then resolve, one
    incident; each event breaking a documented rule is invalid by the schema too, and the emulator answers 400
    "invalid event" naming it; a body that is not JSON is the document's "Unrecognized object"; a throttled
    integration 429."""
    url = f"{profile.urls['pagerduty_events']}/v2/enqueue"
    dedup = f"contract-{secrets.token_hex(4)}"
    trigger = pd_trigger(profile, dedup)
    resolve = {"routing_key": trigger["routing_key"], "event_action": "resolve", "dedup_key": dedup}
    for event in (trigger, trigger, resolve):
        assert violations(PD_EVENTS, "#/$defs/Event", event) == []
        answer = httpx.post(url, json=event)
        assert answer.status_code == PD_EVENTS["responses"]["accepted"], answer.text
        assert violations(PD_EVENTS, "#/$defs/Success", answer.json()) == [] and answer.json()["dedup_key"] == dedup
    state = json.loads(services.state_file(restore_services).read_text())
    [incident] = [i for i in state["pagerduty_incidents"] if i["dedup_key"] == dedup]
    assert (incident["status"], incident["triggers"]) == ("resolved", 2), "a trigger on an open key is the same one"
    assert [e["applied"].split()[0] for e in state["pagerduty_events"][-3:]] == ["opened", "triggered", "resolved"]
    assert all("routing_key" not in e for e in state["pagerduty_events"])

    bad = {"short routing key": (trigger | {"routing_key": "k" * 31}, "Length of 'routing_key' is incorrect"),
           "not the integration's": (trigger | {"routing_key": "0" * 32}, "Invalid routing key"),
           "no summary": (pd_trigger(profile, dedup, summary=None), "'payload.summary' is missing"),
           "long summary": (pd_trigger(profile, dedup, summary="x" * 1025), "'payload.summary' is too long"),
           "no source": (pd_trigger(profile, dedup, source=None), "'payload.source' is missing"),
           "severity": (pd_trigger(profile, dedup, severity="fatal"), "'payload.severity' is invalid"),
           "details": (pd_trigger(profile, dedup, custom_details=["a"]), "'payload.custom_details' must be an object"),
           "action": (trigger | {"event_action": "close"}, "'event_action' is invalid"),
           "no payload": ({k: v for k, v in trigger.items() if k != "payload"}, "'payload' is missing"),
           "long key": (trigger | {"dedup_key": "k" * 256}, "'dedup_key' must be a string of at most 255"),
           "resolve without key": ({k: v for k, v in resolve.items() if k != "dedup_key"}, "'dedup_key' is missing"),
           "link without href": (trigger | {"links": [{"text": "x"}]}, "'links' must be a list")}
    for name, (event, error) in bad.items():
        if name != "not the integration's":   # a key PagerDuty has no integration for is shaped right
            assert violations(PD_EVENTS, "#/$defs/Event", event) != [], name
        answer = httpx.post(url, json=event)
        assert answer.status_code == PD_EVENTS["responses"]["invalid"], name
        assert violations(PD_EVENTS, "#/$defs/Invalid", answer.json()) == [], name
        assert any(e.startswith(error) for e in answer.json()["errors"]), (name, answer.json())
    garbled = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400 and violations(PD_EVENTS, "#/$defs/Unrecognized", garbled.json()) == []
    with services.services_state(restore_services) as state:
        state["pagerduty_throttled"] = True
    throttled = httpx.post(url, json=trigger)
    limit = PD_EVENTS["responses"]["rate_limited"]
    assert (throttled.status_code, throttled.reason_phrase) == (limit["status"], limit["reason"])


def test_pagerduty_incident_notes_answer_as_pagerduty_documents(profile, restore_services):
    """A note with the documented headers on an incident the events opened: 200 {"note": IncidentNote}, kept; a
    wrong token 401, a From that is no user's or no content 400, an unknown incident 404, each the generic error."""
    dedup = f"contract-{secrets.token_hex(4)}"
    httpx.post(f"{profile.urls['pagerduty_events']}/v2/enqueue", json=pd_trigger(profile, dedup)).raise_for_status()
    state = json.loads(services.state_file(restore_services).read_text())
    [incident] = [i for i in state["pagerduty_incidents"] if i["dedup_key"] == dedup]
    headers = {"Authorization": f"Token token={profile.secret('pagerduty_api_token').reveal()}",
               "From": profile.pagerduty_from, "Accept": PD_NOTES["headers"]["Accept"]}
    body = {"note": {"content": "Report: https://runbooks.example.test/r/report.html"}}
    assert violations(PD_NOTES, "#/$defs/CreateNoteRequest", body) == []
    base = f"{profile.urls['pagerduty_api']}/incidents"
    answer = httpx.post(f"{base}/{incident['id']}/notes", json=body, headers=headers)
    assert answer.status_code == PD_NOTES["responses"]["created"], answer.text
    assert violations(PD_NOTES, "#/$defs/CreateNoteResponse", answer.json()) == []
    assert answer.json()["note"]["content"] == body["note"]["content"]
    kept = json.loads(services.state_file(restore_services).read_text())["pagerduty_notes"][incident["id"]]
    assert [n["content"] for n in kept] == [body["note"]["content"]]
    for status, url, given, sent in (
            ("unauthorized", f"{base}/{incident['id']}/notes", headers | {"Authorization": "Token token=nope"}, body),
            ("invalid", f"{base}/{incident['id']}/notes", headers | {"From": "nobody@example.com"}, body),
            ("invalid", f"{base}/{incident['id']}/notes", headers, {"note": {"content": ""}}),
            ("not_found", f"{base}/Q0NOSUCHINCIDENT/notes", headers, body)):
        refused = httpx.post(url, json=sent, headers=given)
        assert refused.status_code == PD_NOTES["responses"][status], (status, refused.text)
        assert violations(PD_NOTES, "#/$defs/Error", refused.json()) == [] and refused.json()["error"]["message"]


def test_the_slack_webhook_keeps_block_kit_readable_and_refuses_bad_blocks(profile, restore_services):
    url = profile.secret("slack_webhook_url").reveal()
    message = {"text": "fallback", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "e1: health-check went OK -> CRITICAL"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Status*\nOK -&gt; CRITICAL"}]},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the report"},
                                          "url": "https://runbooks.example.test/r/report.html"}]}]}
    assert list(jsonschema.Draft202012Validator(SLACK["request"]).iter_errors(message)) == []
    assert httpx.post(url, json=message).text == "ok"
    kept = json.loads(services.state_file(restore_services).read_text())["slack_messages"][-1]
    assert kept["shown"] == ["e1: health-check went OK -> CRITICAL", "*Status*\nOK -&gt; CRITICAL",
                             "Open the report <https://runbooks.example.test/r/report.html>"]
    refused = httpx.post(url, json={"text": "x", "blocks": [{"text": "no type"}]})
    assert (refused.status_code, refused.text) == (SLACK["responses"]["errors"]["invalid_blocks"], "invalid_blocks")
