"""The sandbox's hosted services, with the shapes of their public APIs: Vercel, Resend, Supabase Auth, status pages.

No emulator exists for these, so one small server answers for all of them, each under its own prefix:
- /vercel: GET /v6/deployments (newest first, `target`, `limit`), GET /v9/projects/{id} (its production
  deployment), POST /v1/projects/{id}/rollback/{deploymentId} (201, no body; points production at that deployment);
- /resend: GET /domains, GET /emails, GET /emails/{id}, POST /emails (a domain that is not verified refuses: 403;
  an email to a recipient domain in the state's `bouncing` list, or to any with "*", ends `bounced`);
- /supabase: GET /auth/v1/health (GoTrue's answer, or 503 when the scenario says Auth is down);
- /slack/services/...: a Slack incoming webhook (the schedules' notifications), its messages kept in the state;
- /status/{stripe|supabase|vercel|resend}: statuspage.io's /api/v2/summary.json and /api/v2/status.json;
- /integrations/{slack|hubspot|openai|gmail}: the external APIs workflows call (200 JSON; 503 when `down`, an
  answer after INTEGRATION_SLOW_S, longer than the worker waits, when `slow`).

Each endpoint's answers are held to the vendor's own contract by tests/test_contracts.py, against the excerpts
stored under tests/contracts/ (each names its source and version):

| Endpoint                                   | Contract checked against                                              |
|--------------------------------------------|-----------------------------------------------------------------------|
| GET /vercel/v6/deployments                 | @vercel/sdk GetDeploymentsResponseBody (github.com/vercel/sdk 426eb4b) |
| GET /vercel/v9/projects/{id}               | @vercel/sdk GetProjectResponseBody, GetProjectTargets (same commit)   |
| POST /vercel/v1/projects/{id}/rollback/{d} | @vercel/sdk requestRollback: 201, no body (same commit)               |
| GET /resend/domains                        | resend-openapi resend.yaml ListDomainsResponse (fd6f395)              |
| GET /resend/emails, GET /resend/emails/{id}| resend-openapi ListEmailsResponse, Email (fd6f395)                    |
| POST /resend/emails                        | resend-openapi SendEmailRequest -> SendEmailResponse (fd6f395)        |
| GET /supabase/auth/v1/health               | supabase/auth openapi.yaml GET /health: 200 schema, 5XX (045e972)     |
| GET /status/{s}/api/v2/summary.json        | Statuspage public API pages (<page>/api), summary.json                |
| GET /status/{s}/api/v2/status.json         | Statuspage public API pages (<page>/api), status.json                 |
| POST /slack/services/...                   | api.slack.com/messaging/webhooks; webhook errors changelog 2016-05-17 |
| GET|POST /integrations/{name}              | none: stand-ins probed for status and time only, no vendor shape      |

localstripe (Stripe, not served here) is held to the same test file: the fields the billing runbooks read are the
ones the stripe SDK's models document (or the pinned API version's), and localstripe's answers carry them.

Each API checks its credential (Bearer token; Supabase's `apikey` header), as the real ones do.

State is the sandbox folder's services.json, seeded by `sandbox up`, changed by scenarios (services_state()) and
by the API's own writes (rollback, emails), always under a lock and replaced atomically; the server re-reads it
when it changes, so a scenario acts without a restart. Run as
`python -m aias_runbooks.sandbox.services --port N --state-dir D`; credentials come from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import processes

PROJECT = {"id": "prj_aias", "name": "aias-platform"}
PROJECT_SETTINGS = {"accountId": "team_aias", "alias": [], "deploymentExpiration": {}, "directoryListing": False,
                    "nodeVersion": "22.x", "resourceConfig": {"functionDefaultRegions": ["iad1"]},
                    "defaultResourceConfig": {"functionDefaultRegions": ["iad1"]}}
STATUS_PAGES = {"stripe": "Stripe", "supabase": "Supabase", "vercel": "Vercel", "resend": "Resend"}
INDICATORS = {"none": "All Systems Operational", "minor": "Minor Service Outage", "major": "Partial System Outage",
              "critical": "Major System Outage"}
COMPONENT_STATUS = {"none": "operational", "minor": "degraded_performance", "major": "partial_outage",
                    "critical": "major_outage"}
INTEGRATIONS = ("slack", "hubspot", "openai", "gmail")
INTEGRATION_SLOW_S = 3.0
DEPLOY_MESSAGES = ["Fix workflow list pagination", "Bump dependencies", "Add tenant usage page",
                   "Tighten rate limits on signup", "Refactor billing webhook handler", "Speed up dashboard query"]


def state_file(folder: Path) -> Path:
    return folder / "services.json"


@contextlib.contextmanager
def services_state(folder: Path) -> Iterator[dict[str, Any]]:
    """The services' state to read and change; written back atomically, under a lock, when the block ends."""
    path = state_file(folder)
    with (folder / "services.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        yield state
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=1))
        os.replace(partial, path)


def seed(folder: Path, now: float | None = None) -> None:
    """A healthy platform: six READY production deployments over the last week (the newest live), the sending
    domain verified, Auth up, every status page green."""
    now = now or time.time()
    deployments = [deployment(now - (6 - i) * 86400 * 1.1 - 3600, DEPLOY_MESSAGES[i]) for i in range(6)]
    with services_state(folder) as state:
        state.clear()
        state.update(deployments=deployments, production=deployments[-1]["uid"],
                     domains=[{"id": "d91cd9bd-1176-453e-8fc1-35364d380206", "name": "aiautomatedsystems.ca",
                               "status": "verified", "created_at": _resend_time(now - 200 * 86400),
                               "region": "us-east-1"}],
                     emails=[], bouncing=[], auth="up", status={name: "none" for name in STATUS_PAGES},
                     integrations={name: "up" for name in INTEGRATIONS})


def deployment(created: float, message: str, state: str = "READY") -> dict[str, Any]:
    """One Vercel deployment as GET /v6/deployments lists it (times in milliseconds)."""
    uid = "dpl_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:24]
    ms = int(created * 1000)
    return {"uid": uid, "name": PROJECT["name"], "projectId": PROJECT["id"],
            "url": f"{PROJECT['name']}-{uid[4:13].lower()}.vercel.app",
            "created": ms, "createdAt": ms, "buildingAt": ms + 2000, "ready": ms + 95000, "state": state,
            "readyState": state, "type": "LAMBDAS", "target": "production", "source": "git",
            "creator": {"uid": "usr_ops", "username": "aias-ci"},
            "meta": {"githubCommitSha": secrets.token_hex(20), "githubCommitMessage": message,
                     "githubCommitRef": "main"},
            "inspectorUrl": f"https://vercel.com/aias/{PROJECT['name']}/{uid[4:]}"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _resend_time(epoch: float) -> str:
    """A time as Resend's API writes it (its OpenAPI examples: '2023-04-03 22:13:42.674981+00'), not ISO 8601's."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")


class State:
    """services.json, re-read when it changes."""

    def __init__(self, folder: Path) -> None:
        self.folder, self._mtime, self._data = folder, None, {}

    def get(self) -> dict[str, Any]:
        try:
            mtime = state_file(self.folder).stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            self._data, self._mtime = json.loads(state_file(self.folder).read_text()), mtime
        return self._data


def _bearer(secret_var: str) -> Callable:
    def check(request: web.Request) -> None:
        expected = os.environ.get(secret_var, "")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not expected or not secrets.compare_digest(given, expected):
            raise web.HTTPUnauthorized(text=json.dumps({"error": {"code": "forbidden", "message": "Not authorized"}}),
                                       content_type="application/json")
    return check


vercel_auth = _bearer("AIAS_SANDBOX_VERCEL_TOKEN")
resend_auth = _bearer("AIAS_SANDBOX_RESEND_API_KEY")


async def vercel_deployments(request: web.Request) -> web.Response:
    vercel_auth(request)
    state = request.app["state"].get()
    target = request.query.get("target")
    limit = min(int(request.query.get("limit", "20")), 100)
    found = sorted((d for d in state.get("deployments", []) if not target or d["target"] == target),
                   key=lambda d: d["created"], reverse=True)[:limit]
    page = {"count": len(found), "next": found[-1]["created"] if found else None, "prev": None}
    return web.json_response({"deployments": found, "pagination": page})


async def vercel_project(request: web.Request) -> web.Response:
    vercel_auth(request)
    state = request.app["state"].get()
    live = next((d for d in state.get("deployments", []) if d["uid"] == state.get("production")), None)
    return web.json_response(PROJECT | PROJECT_SETTINGS | {"targets": {"production": live and _target(live)}})


def _target(live: dict[str, Any]) -> dict[str, Any]:
    """The production deployment as GET /v9/projects/{id} lists it under `targets` (@vercel/sdk's
    GetProjectTargets: its required fields)."""
    return {"id": live["uid"], "name": live["name"], "url": live["url"], "deploymentHostname": live["url"],
            "createdAt": live["createdAt"], "createdIn": "iad1", "readyAt": live["ready"],
            "readyState": live["readyState"], "target": "production", "type": "LAMBDAS", "plan": "pro",
            "private": True, "meta": live["meta"],
            "creator": live["creator"] | {"email": f"{live['creator']['username']}@aiautomatedsystems.ca"}}


async def vercel_rollback(request: web.Request) -> web.Response:
    vercel_auth(request)
    wanted = request.match_info["deployment"]
    with services_state(request.app["folder"]) as state:
        target = next((d for d in state["deployments"] if d["uid"] == wanted), None)
        if target is None:
            raise web.HTTPNotFound(text=json.dumps({"error": {"code": "not_found", "message": "Deployment not found"}}),
                                   content_type="application/json")
        if target["state"] != "READY" or target["target"] != "production":
            raise web.HTTPBadRequest(text=json.dumps({"error": {"code": "bad_request",
                                                                "message": "Can only roll back to a READY production "
                                                                           "deployment"}}),
                                     content_type="application/json")
        state["production"] = wanted
        state.setdefault("rollbacks", []).append({"to": wanted, "at": _iso(time.time()),
                                                  "description": request.query.get("description", "")})
    return web.Response(status=201)   # no body: @vercel/sdk's requestRollback reads 201 as void


async def resend_domains(request: web.Request) -> web.Response:
    resend_auth(request)
    return web.json_response({"object": "list", "has_more": False,   # resend-openapi's ListDomainsResponse
                              "data": request.app["state"].get().get("domains", [])})


async def resend_emails(request: web.Request) -> web.Response:
    resend_auth(request)
    emails = sorted(request.app["state"].get().get("emails", []), key=lambda e: e["created_at"], reverse=True)
    limit = min(int(request.query.get("limit", "20")), 100)
    return web.json_response({"object": "list", "has_more": len(emails) > limit,
                              "data": [_email(e) for e in emails[:limit]]})


async def resend_email(request: web.Request) -> web.Response:
    resend_auth(request)
    found = next((e for e in request.app["state"].get().get("emails", []) if e["id"] == request.match_info["id"]),
                 None)
    if found is None:
        raise web.HTTPNotFound(text=json.dumps({"name": "not_found", "message": "Email not found"}),
                               content_type="application/json")
    return web.json_response(_email(found))


def _email(stored: dict[str, Any]) -> dict[str, Any]:
    """An email as Resend's API shows it: its fields that have a value (Resend's Email schema has no nullable
    field: an email sent without `text` has none, not null)."""
    return {"object": "email"} | {k: v for k, v in stored.items() if v is not None}


async def resend_send(request: web.Request) -> web.Response:
    """POST /emails: accepted when the sender's domain is verified, else 403. Its last event is 'bounced' when a
    recipient's mail server rejects it (its domain is in the state's `bouncing` list; "*": every one does, as
    when our sending reputation or DNS fails), else 'delivered'."""
    resend_auth(request)
    body = await request.json()
    sender_domain = str(body.get("from", "")).rsplit("@", 1)[-1].strip(">").lower()
    with services_state(request.app["folder"]) as state:
        domain = next((d for d in state.get("domains", []) if d["name"] == sender_domain), None)
        if domain is None or domain["status"] != "verified":
            message = f"The {sender_domain} domain is not verified. Please, add and verify your domain."
            return web.json_response({"statusCode": 403, "name": "validation_error", "message": message}, status=403)
        to = [body["to"]] if isinstance(body.get("to"), str) else list(body.get("to") or [])
        email = {"id": secrets.token_hex(16), "to": to, "from": body.get("from"),
                 "subject": body.get("subject"), "text": body.get("text"), "created_at": _resend_time(time.time()),
                 "last_event": "bounced" if _bounces(state.get("bouncing", []), to) else "delivered"}
        state["emails"] = (state.get("emails", []) + [email])[-500:]
    return web.json_response({"id": email["id"]})


def _bounces(bouncing: list[str], to: list[str]) -> bool:
    """A recipient's mail server rejects the email: its domain is in `bouncing`, or "*" is."""
    return "*" in bouncing or any(str(a).rsplit("@", 1)[-1].strip(">").lower() in bouncing for a in to)


async def slack_webhook(request: web.Request) -> web.Response:
    """A Slack incoming webhook (POST {"text": ...} or {"blocks": [...]}, answered "ok" as text/plain): the URL's
    path is its token, as Slack's is; a body that is not a JSON message is invalid_payload, one with neither text,
    blocks nor attachments no_text (all 400)."""
    expected = urlsplit(os.environ.get("AIAS_SANDBOX_SLACK_WEBHOOK_URL", "")).path
    if not expected or not secrets.compare_digest(request.path, expected):
        return web.Response(status=403, text="invalid_token")
    try:
        message = await request.json()
    except ValueError:
        return web.Response(status=400, text="invalid_payload")
    if not isinstance(message, dict):
        return web.Response(status=400, text="invalid_payload")
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    if not text and not message.get("blocks") and not message.get("attachments"):
        return web.Response(status=400, text="no_text")
    text = text or json.dumps({k: message[k] for k in ("blocks", "attachments") if k in message})
    with services_state(request.app["folder"]) as state:
        state["slack_messages"] = (state.get("slack_messages", []) + [{"text": text, "at": _iso(time.time())}])[-500:]
    return web.Response(text="ok")


async def auth_health(request: web.Request) -> web.Response:
    if not request.headers.get("apikey"):
        return web.json_response({"message": "No API key found in request"}, status=401)
    if request.app["state"].get().get("auth") != "up":
        return web.json_response({"code": 503, "msg": "Service Unavailable"}, status=503)
    return web.json_response({"version": "v2.170.0", "name": "GoTrue",
                              "description": "GoTrue is a user registration and authentication API"})


def _page(request: web.Request) -> tuple[str, dict[str, Any], str]:
    service = request.match_info["service"]
    if service not in STATUS_PAGES:
        raise web.HTTPNotFound()
    indicator = request.app["state"].get().get("status", {}).get(service, "none")
    page = {"id": f"page_{service}", "name": STATUS_PAGES[service], "url": f"https://status.{service}.example",
            "time_zone": "Etc/UTC", "updated_at": _iso(time.time())}
    return service, page, indicator


async def status_summary(request: web.Request) -> web.Response:
    service, page, indicator = _page(request)
    component = {"id": f"cmp_{service}_api", "name": "API", "status": COMPONENT_STATUS[indicator],
                 "created_at": _iso(0), "updated_at": page["updated_at"], "position": 1, "description": None,
                 "showcase": True, "group_id": None, "page_id": page["id"], "group": False,
                 "only_show_if_degraded": False}
    incidents = [] if indicator == "none" else [_incident(service, page, indicator)]
    return web.json_response({"page": page, "components": [component], "incidents": incidents,
                              "scheduled_maintenances": [],
                              "status": {"indicator": indicator, "description": INDICATORS[indicator]}})


def _incident(service: str, page: dict[str, Any], impact: str) -> dict[str, Any]:
    """The page's one unresolved incident, with its first update, as Statuspage's summary.json lists it."""
    at, incident_id = page["updated_at"], f"inc_{service}"
    update = {"id": f"upd_{service}", "incident_id": incident_id, "status": "investigating", "created_at": at,
              "updated_at": at, "display_at": at,
              "body": f"We are investigating elevated error rates on the {STATUS_PAGES[service]} API."}
    return {"id": incident_id, "name": f"Elevated error rates on the {STATUS_PAGES[service]} API",
            "status": "investigating", "impact": impact, "created_at": at, "updated_at": at, "monitoring_at": None,
            "resolved_at": None, "page_id": page["id"], "shortlink": f"https://stspg.io/{service}",
            "incident_updates": [update]}


async def status_status(request: web.Request) -> web.Response:
    _, page, indicator = _page(request)
    return web.json_response({"page": page, "status": {"indicator": indicator, "description": INDICATORS[indicator]}})


async def integration(request: web.Request) -> web.Response:
    """An external API a workflow calls: up (200), down (503) or slow (answers after INTEGRATION_SLOW_S)."""
    name = request.match_info["name"]
    if name not in INTEGRATIONS:
        raise web.HTTPNotFound()
    health = request.app["state"].get().get("integrations", {}).get(name, "up")
    if health == "down":
        return web.json_response({"error": {"code": "service_unavailable",
                                            "message": f"{name} API is temporarily unavailable"}}, status=503)
    if health == "slow":
        await asyncio.sleep(INTEGRATION_SLOW_S)
    return web.json_response({"ok": True, "integration": name, "time": _iso(time.time())})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(folder: Path) -> web.Application:
    app = web.Application()
    app.update(folder=folder, state=State(folder))
    routes = [("GET", "/vercel/v6/deployments", vercel_deployments),
              ("GET", "/vercel/v9/projects/{id}", vercel_project),
              ("POST", "/vercel/v1/projects/{id}/rollback/{deployment}", vercel_rollback),
              ("GET", "/resend/domains", resend_domains), ("GET", "/resend/emails", resend_emails),
              ("GET", "/resend/emails/{id}", resend_email), ("POST", "/resend/emails", resend_send),
              ("GET", "/supabase/auth/v1/health", auth_health), ("POST", "/slack/services/{token:.+}", slack_webhook),
              ("GET", "/status/{service}/api/v2/summary.json", status_summary),
              ("GET", "/status/{service}/api/v2/status.json", status_status), ("GET", "/ready", ready),
              ("GET", "/integrations/{name}", integration), ("POST", "/integrations/{name}", integration)]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


def main() -> None:
    processes.serve(make_app, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
