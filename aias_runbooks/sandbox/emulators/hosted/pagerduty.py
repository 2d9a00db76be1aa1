"""PagerDuty, as notify's pagerduty channel and `serve` meet it: the Events API v2 (POST /pagerduty/events/v2/enqueue,
routing key AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY) and the REST API v2's incident notes (POST
/pagerduty/api/incidents/{id}/notes, token AIAS_SANDBOX_PAGERDUTY_API_TOKEN, From a user of the account).

What it received is kept in the services' state for the tests to read:
- `pagerduty_events`: each event accepted (202), as sent but for its routing key, with when it came and what it did
  (`applied`: opened, triggered again, acknowledged, resolved or dropped, with the incident's id);
- `pagerduty_incidents`: the incidents the events made, one per dedup_key while open (`triggered`, `acknowledged`),
  `resolved` once resolved; a trigger for a resolved key opens a new one, as PagerDuty's alerts do;
- `pagerduty_notes`: {incident id: [notes]}; a note is taken only on an incident the events made (404 otherwise);
- `pagerduty_users`: the account's users (a note's From must be one); `pagerduty_throttled`: true answers every
  event 429 (PagerDuty's rate limit), for a test of the retry.

Answers are held to PagerDuty's published contract (tests/sandbox/contracts/pagerduty/): 202 {status "success",
message "Event processed", dedup_key}; 400 {status "invalid event", message "Event object is invalid", errors [...]}
for an event breaking the documented rules (routing key of 32 characters and the integration's, event_action,
dedup_key at most 255 characters and required to acknowledge or resolve, a trigger's payload with summary (at most
1024), source and severity, custom_details an object, links [{href, text}]); a body that is not a JSON object is
"Unrecognized object" (the document's own error example); notes 200 {"note": {...}}, errors {"error": {...}}.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
import uuid
from typing import Any

from aiohttp import web

from .state import iso, services_state

ROUTING_VAR = "AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY"
TOKEN_VAR = "AIAS_SANDBOX_PAGERDUTY_API_TOKEN"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_DEDUP, MAX_SUMMARY, MAX_NOTES, KEEP = 255, 1024, 2000, 500
USER = {"id": "PSBX0RB", "email": "runbooks@aiautomatedsystems.ca", "name": "AIAS Runbooks"}


def healthy(now: float) -> dict[str, Any]:
    """Nothing paged yet; one user (the sandbox profile's pagerduty_from); not throttled."""
    return {"pagerduty_events": [], "pagerduty_incidents": [], "pagerduty_notes": {}, "pagerduty_users": [USER],
            "pagerduty_throttled": False}


def _invalid(*errors: str) -> web.Response:
    return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                              "errors": list(errors)}, status=400)


def event_errors(event: dict[str, Any], routing_key: str) -> list[str]:
    """Every documented rule the event breaks, PagerDuty's way of saying it; [] when it is valid."""
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif not routing_key or not secrets.compare_digest(key, routing_key):
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > MAX_DEDUP):
        errors.append(f"'dedup_key' must be a string of at most {MAX_DEDUP} characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is missing or blank (required to {action})")
    if action == "trigger":
        errors += _payload_errors(event.get("payload"))
    links = event.get("links", [])
    if not isinstance(links, list) or not all(isinstance(link, dict) and isinstance(link.get("href"), str)
                                              and isinstance(link.get("text", ""), str) for link in links):
        errors.append("'links' must be a list of objects with an 'href' (and optional 'text')")
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or blank"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)")
    if not isinstance(payload.get("source"), str) or not payload["source"].strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


async def enqueue(request: web.Request) -> web.Response:
    """POST /v2/enqueue: 202 once accepted (applied to the incidents as PagerDuty applies it), 400 when invalid,
    429 while the state says the integration is throttled."""
    try:
        event = json.loads(await request.read())
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return web.json_response({"status": "Unrecognized object", "message": "Event object format is unrecognized",
                                  "errors": ["JSON parse error"]}, status=400)
    errors = event_errors(event, os.environ.get(ROUTING_VAR, ""))
    if errors:
        return _invalid(*errors)
    with services_state(request.app["folder"]) as state:
        if state.get("pagerduty_throttled"):
            return web.Response(status=429, reason="Request Limit Exceeded")
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        applied = _apply(state, event["event_action"], dedup, event.get("payload") or {})
        kept = {k: v for k, v in event.items() if k != "routing_key"} | {
            "dedup_key": dedup, "received_at": iso(time.time()), "applied": applied}
        state["pagerduty_events"] = (state.get("pagerduty_events", []) + [kept])[-KEEP:]
    return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202)


def _apply(state: dict[str, Any], action: str, dedup: str, payload: dict[str, Any]) -> str:
    """The event's effect on the incidents: a trigger opens one (or is added to the open one of its key), an
    acknowledge or resolve changes the open one; with none open they are dropped."""
    incidents = state.setdefault("pagerduty_incidents", [])
    current = next((i for i in reversed(incidents) if i["dedup_key"] == dedup and i["status"] != "resolved"), None)
    now = iso(time.time())
    if action == "trigger":
        if current is not None:
            current["triggers"] += 1
            return f"triggered again {current['id']}"
        number = max((i["number"] for i in incidents), default=0) + 1
        incident_id = "Q" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(13))
        incidents.append({"id": incident_id, "number": number, "dedup_key": dedup, "status": "triggered",
                          "title": payload.get("summary", ""), "triggers": 1, "created_at": now})
        return f"opened {incident_id}"
    if current is None:
        return "dropped"
    current["status"] = "resolved" if action == "resolve" else "acknowledged"
    current[f"{current['status']}_at"] = now
    return f"{current['status']} {current['id']}"


def _error(status: int, message: str, code: int | None = None, *errors: str) -> web.Response:
    body: dict[str, Any] = {"message": message} | ({"code": code} if code is not None else {})
    return web.json_response({"error": body | ({"errors": list(errors)} if errors else {})}, status=status)


async def create_note(request: web.Request) -> web.Response:
    """POST /incidents/{id}/notes: the note kept on an incident the events made, answered 200 {"note": ...}; 401
    without the account's token, 400 without a From of its users or a note's content, 404 for another incident."""
    token = os.environ.get(TOKEN_VAR, "")
    given = request.headers.get("Authorization", "")
    if not token or not secrets.compare_digest(given, f"Token token={token}"):
        return _error(401, "Unauthorized")
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = None
    note = body.get("note") if isinstance(body, dict) else None
    content = note.get("content") if isinstance(note, dict) else None
    incident_id = request.match_info["id"]
    with services_state(request.app["folder"]) as state:
        user = next((u for u in state.get("pagerduty_users", [])
                     if u["email"].lower() == request.headers.get("From", "").strip().lower()), None)
        if user is None:
            return _error(400, "Invalid Input Provided", 2001, "Requester User Not Found")
        if not isinstance(content, str) or not content.strip():
            return _error(400, "Invalid Input Provided", 2001, "Note content can't be blank")
        if not any(i["id"] == incident_id for i in state.get("pagerduty_incidents", [])):
            return _error(404, "Not Found", 2100)
        notes = state.setdefault("pagerduty_notes", {}).setdefault(incident_id, [])
        if len(notes) >= MAX_NOTES:
            return _error(400, "Invalid Input Provided", 2001, f"An incident can have at most {MAX_NOTES} notes")
        now = iso(time.time())
        kept = {"id": "N" + secrets.token_hex(6).upper(),
                "user": {"id": user["id"], "type": "user_reference", "summary": user["name"],
                         "self": f"https://api.pagerduty.com/users/{user['id']}",
                         "html_url": f"https://sandbox.pagerduty.com/users/{user['id']}"},
                "channel": {"summary": "The PagerDuty website or APIs"}, "content": content,
                "created_at": now, "updated_at": now}
        notes.append(kept)
    return web.json_response({"note": kept})


ROUTES = [("POST", "/pagerduty/events/v2/enqueue", enqueue),
          ("POST", "/pagerduty/api/incidents/{id}/notes", create_note)]
