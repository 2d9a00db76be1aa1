"""A Slack incoming webhook (the schedules' notifications): POST /slack/services/..., its path the token as
Slack's is, its messages kept in the state for the tests to read."""

from __future__ import annotations

import json
import os
import secrets
import time
from urllib.parse import urlsplit

from aiohttp import web

from .state import iso, services_state


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
        state["slack_messages"] = (state.get("slack_messages", []) + [{"text": text, "at": iso(time.time())}])[-500:]
    return web.Response(text="ok")


ROUTES = [("POST", "/slack/services/{token:.+}", slack_webhook)]
