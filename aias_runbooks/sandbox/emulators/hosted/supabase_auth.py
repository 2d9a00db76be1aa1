"""Supabase Auth's health endpoint (GET /auth/v1/health): GoTrue's answer, or 503 when the state says Auth is
down; without an `apikey` header, 401 as Supabase's gateway answers."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def healthy(now: float) -> dict[str, Any]:
    """Auth up."""
    return {"auth": "up"}


async def auth_health(request: web.Request) -> web.Response:
    if not request.headers.get("apikey"):
        return web.json_response({"message": "No API key found in request"}, status=401)
    if request.app["state"].get().get("auth") != "up":
        return web.json_response({"code": 503, "msg": "Service Unavailable"}, status=503)
    return web.json_response({"version": "v2.170.0", "name": "GoTrue",
                              "description": "GoTrue is a user registration and authentication API"})


ROUTES = [("GET", "/supabase/auth/v1/health", auth_health)]
