"""A Slack incoming webhook (the schedules' notifications): POST /slack/services/..., its path the token as
Slack's is, its messages kept in the state for the tests to read: the text (Slack's notification fallback), the
Block Kit blocks as sent, and `shown`, the blocks as lines of plain text (what a reader of the channel sees: the
header, each section's text and fields, the context, each button's label and URL)."""

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
    if "blocks" in message and not _blocks_ok(message["blocks"]):
        return web.Response(status=400, text="invalid_blocks")
    blocks = message.get("blocks") or []
    text = text or json.dumps({k: message[k] for k in ("blocks", "attachments") if k in message})
    kept = {"text": text, "at": iso(time.time())} | ({"blocks": blocks, "shown": shown(blocks)} if blocks else {})
    with services_state(request.app["folder"]) as state:
        state["slack_messages"] = (state.get("slack_messages", []) + [kept])[-500:]
    return web.Response(text="ok")


def _blocks_ok(blocks: object) -> bool:
    """Block Kit's outer shape: a list of at most 50 objects, each with a `type`."""
    return (isinstance(blocks, list) and len(blocks) <= 50
            and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks))


def shown(blocks: list[dict]) -> list[str]:
    """The blocks as the lines a reader sees: text objects' text, buttons as 'label <url>'."""
    lines: list[str] = []

    def text(obj: object) -> str:
        return str(obj.get("text", "")) if isinstance(obj, dict) else ""

    for block in blocks:
        lines += [t for t in [text(block.get("text"))] if t]
        lines += [text(f) for f in block.get("fields") or []]
        lines += [text(e) for e in block.get("elements") or [] if e.get("type") != "button"]
        lines += [f"{text(e.get('text'))} <{e.get('url', '')}>" for e in block.get("elements") or []
                  if e.get("type") == "button"]
    return lines


ROUTES = [("POST", "/slack/services/{token:.+}", slack_webhook)]
