"""The sandbox's hosted services, with the shapes of their public APIs: Vercel, Resend, Supabase Auth, status pages.

No emulator exists for these, so this one small server answers for all of them, each under its own prefix and
in its own module:
- /vercel: GET /v6/deployments (newest first, `target`, `limit`), GET /v9/projects/{id} (its production
  deployment), POST /v1/projects/{id}/rollback/{deploymentId} (201, no body; points production at that deployment);
- /resend: GET /domains, GET /emails, GET /emails/{id}, POST /emails (a domain that is not verified refuses: 403;
  an email to a recipient domain in the state's `bouncing` list, or to any with "*", ends `bounced`);
- /supabase: GET /auth/v1/health (GoTrue's answer, or 503 when the scenario says Auth is down);
- /slack/services/...: a Slack incoming webhook (the schedules' notifications), its messages kept in the state;
- /pagerduty/events/v2/enqueue and /pagerduty/api/incidents/{id}/notes: PagerDuty's Events API v2 (notify's
  pagerduty channel) and the REST API's incident notes (serve), the events, incidents and notes kept in the state;
- /status/{stripe|supabase|vercel|resend}: statuspage.io's /api/v2/summary.json and /api/v2/status.json;
- /integrations/{slack|hubspot|openai|gmail}: the external APIs workflows call (200 JSON; 503 when `down`, an
  answer after INTEGRATION_SLOW_S, longer than the worker waits, when `slow`).

Each endpoint's answers are held to the vendor's own contract by tests/sandbox/test_contracts.py, against the excerpts
stored under tests/sandbox/contracts/ (each names its source and version):

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
| POST /pagerduty/events/v2/enqueue          | PagerDuty api-schema events-v2 openapiv3.json (06b017d); developer docs|
| POST /pagerduty/api/incidents/{id}/notes   | PagerDuty api-schema REST openapiv3.json createIncidentNote (2326e6b) |
| GET|POST /integrations/{name}              | none: stand-ins probed for status and time only, no vendor shape      |

localstripe (Stripe, not served here) is held to the same test file: the fields the billing runbooks read are the
ones the stripe SDK's models document (or the pinned API version's), and localstripe's answers carry them.

Each API checks its credential (Bearer token; Supabase's `apikey` header), as the real ones do.

State is the sandbox folder's services.json, seeded by `sandbox up`, changed by scenarios (services_state()) and
by the API's own writes (rollback, emails), always under a lock and replaced atomically; the server re-reads it
when it changes, so a scenario acts without a restart. Run as
`python -m aias_runbooks.sandbox.emulators.hosted.server --port N --state-dir D`; credentials come from the environment.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from ... import processes
from . import integrations, pagerduty, resend, slack, status_pages, supabase_auth, vercel
from .state import State, services_state

SERVICES = (vercel, resend, supabase_auth, status_pages, integrations, pagerduty)   # each seeds its part of the state


def seed(folder: Path, now: float | None = None) -> None:
    """A healthy platform: six READY production deployments over the last week (the newest live), the sending
    domain verified, Auth up, every status page green, every integration up, nothing paged."""
    now = now or time.time()
    with services_state(folder) as state:
        state.clear()
        for service in SERVICES:
            state.update(service.healthy(now))


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(folder: Path) -> web.Application:
    app = web.Application()
    app.update(folder=folder, state=State(folder))
    for module in (*SERVICES, slack):
        for method, path, handler in module.ROUTES:
            app.router.add_route(method, path, handler)
    app.router.add_route("GET", "/ready", ready)
    return app


def main() -> None:
    processes.serve(make_app, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
