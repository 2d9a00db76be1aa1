"""Vercel, as the runbooks meet it: the project's production deployments (GET /v6/deployments, newest first,
`target`, `limit`), the project (GET /v9/projects/{id}: its production deployment) and rollback
(POST /v1/projects/{id}/rollback/{deploymentId}: 201, no body; points production at that deployment)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from .state import bearer, iso, services_state

PROJECT = {"id": "prj_aias", "name": "aias-platform"}
PROJECT_SETTINGS = {"accountId": "team_aias", "alias": [], "deploymentExpiration": {}, "directoryListing": False,
                    "nodeVersion": "22.x", "resourceConfig": {"functionDefaultRegions": ["iad1"]},
                    "defaultResourceConfig": {"functionDefaultRegions": ["iad1"]}}
DEPLOY_MESSAGES = ["Fix workflow list pagination", "Bump dependencies", "Add tenant usage page",
                   "Tighten rate limits on signup", "Refactor billing webhook handler", "Speed up dashboard query"]


vercel_auth = bearer("AIAS_SANDBOX_VERCEL_TOKEN")


def healthy(now: float) -> dict[str, Any]:
    """Six READY production deployments over the last week, the newest live."""
    deployments = [deployment(now - (6 - i) * 86400 * 1.1 - 3600, DEPLOY_MESSAGES[i]) for i in range(6)]
    return {"deployments": deployments, "production": deployments[-1]["uid"]}


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
        state.setdefault("rollbacks", []).append({"to": wanted, "at": iso(time.time()),
                                                  "description": request.query.get("description", "")})
    return web.Response(status=201)   # no body: @vercel/sdk's requestRollback reads 201 as void


ROUTES = [("GET", "/vercel/v6/deployments", vercel_deployments), ("GET", "/vercel/v9/projects/{id}", vercel_project),
          ("POST", "/vercel/v1/projects/{id}/rollback/{deployment}", vercel_rollback)]
