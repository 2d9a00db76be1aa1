"""The vendors' status pages (Stripe, Supabase, Vercel, Resend) as statuspage.io serves
them: /status/{service}/api/v2/summary.json and /api/v2/status.json, each green unless the state names an
incident's impact."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .state import iso

STATUS_PAGES = {"stripe": "Stripe", "supabase": "Supabase", "vercel": "Vercel", "resend": "Resend"}
INDICATORS = {"none": "All Systems Operational", "minor": "Minor Service Outage", "major": "Partial System Outage",
              "critical": "Major System Outage"}
COMPONENT_STATUS = {"none": "operational", "minor": "degraded_performance", "major": "partial_outage",
                    "critical": "major_outage"}


def healthy(now: float) -> dict[str, Any]:
    """Every status page green."""
    return {"status": {name: "none" for name in STATUS_PAGES}}


def _page(request: web.Request) -> tuple[str, dict[str, Any], str]:
    service = request.match_info["service"]
    if service not in STATUS_PAGES:
        raise web.HTTPNotFound()
    indicator = request.app["state"].get().get("status", {}).get(service, "none")
    page = {"id": f"page_{service}", "name": STATUS_PAGES[service], "url": f"https://status.{service}.example",
            "time_zone": "Etc/UTC", "updated_at": iso(time.time())}
    return service, page, indicator

async def status_summary(request: web.Request) -> web.Response:
    service, page, indicator = _page(request)
    component = {"id": f"cmp_{service}_api", "name": "API", "status": COMPONENT_STATUS[indicator],
                 "created_at": iso(0), "updated_at": page["updated_at"], "position": 1, "description": None,
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


ROUTES = [("GET", "/status/{service}/api/v2/summary.json", status_summary),
          ("GET", "/status/{service}/api/v2/status.json", status_status)]
