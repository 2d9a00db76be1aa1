"""The external APIs the platform's workflows call (Slack, HubSpot, OpenAI, Gmail): /integrations/{name} answers
200 JSON when `up`, 503 when `down`, and after INTEGRATION_SLOW_S (longer than the worker waits) when `slow`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from .state import iso

INTEGRATIONS = ("slack", "hubspot", "openai", "gmail")
INTEGRATION_SLOW_S = 3.0


def healthy(now: float) -> dict[str, Any]:
    """Every integration up."""
    return {"integrations": {name: "up" for name in INTEGRATIONS}}


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
    return web.json_response({"ok": True, "integration": name, "time": iso(time.time())})


ROUTES = [("GET", "/integrations/{name}", integration), ("POST", "/integrations/{name}", integration)]
