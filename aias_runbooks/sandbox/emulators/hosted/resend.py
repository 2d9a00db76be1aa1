"""Resend, as the platform and the runbooks meet it: the sending domain (GET /domains), the emails sent
(GET /emails, GET /emails/{id}) and sending one (POST /emails: a domain that is not verified refuses with 403; an
email to a recipient domain in the state's `bouncing` list, or to any with "*", ends `bounced`)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .state import bearer, services_state

resend_auth = bearer("AIAS_SANDBOX_RESEND_API_KEY")


def healthy(now: float) -> dict[str, Any]:
    """The sending domain verified, no email sent yet, every recipient's mail server accepting ours."""
    return {"domains": [{"id": "d91cd9bd-1176-453e-8fc1-35364d380206", "name": "aiautomatedsystems.ca",
                         "status": "verified", "created_at": resend_time(now - 200 * 86400), "region": "us-east-1"}],
            "emails": [], "bouncing": []}


def resend_time(epoch: float) -> str:
    """A time as Resend's API writes it (its OpenAPI examples: '2023-04-03 22:13:42.674981+00'), not ISO 8601's."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")

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
                 "subject": body.get("subject"), "text": body.get("text"), "created_at": resend_time(time.time()),
                 "last_event": "bounced" if _bounces(state.get("bouncing", []), to) else "delivered"}
        state["emails"] = (state.get("emails", []) + [email])[-500:]
    return web.json_response({"id": email["id"]})

def _bounces(bouncing: list[str], to: list[str]) -> bool:
    """A recipient's mail server rejects the email: its domain is in `bouncing`, or "*" is."""
    return "*" in bouncing or any(str(a).rsplit("@", 1)[-1].strip(">").lower() in bouncing for a in to)


ROUTES = [("GET", "/resend/domains", resend_domains), ("GET", "/resend/emails", resend_emails),
          ("GET", "/resend/emails/{id}", resend_email), ("POST", "/resend/emails", resend_send)]
