"""JSON over HTTP for the hosted services' APIs: one bounded request, any failure one line naming the URL."""

from __future__ import annotations

import time
from typing import Any

import httpx


class Unreachable(Exception):
    """The service did not answer usefully: refused, timed out, an error status or not JSON; one line, no secret."""


def request_json(method: str, url: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0,
                 **kwargs: Any) -> tuple[Any, float]:
    """(the JSON body, milliseconds taken); Unreachable on no answer, a status >= 400 or a body that is not JSON."""
    start = time.perf_counter()
    try:
        response = httpx.request(method, url, headers={"User-Agent": "aias-runbooks"} | (headers or {}),
                                 timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)), **kwargs)
    except httpx.HTTPError as exc:
        raise Unreachable(f"no answer from {url}: {type(exc).__name__}: {exc}".rstrip(": ")[:300]) from None
    except (UnicodeEncodeError, ValueError) as exc:   # a credential no HTTP header can carry: never quote it
        raise Unreachable(f"request to {url} not sent: a header (the credential?) is not valid "
                          f"({type(exc).__name__})") from None
    took = (time.perf_counter() - start) * 1000
    try:
        body = response.json() if response.content else {}
    except ValueError:
        raise Unreachable(f"HTTP {response.status_code} from {url}, body is not JSON") from None
    if response.status_code >= 400:
        raise Unreachable(f"HTTP {response.status_code} from {url}: {str(body)[:200]}")
    return body, took


def admin_post(url: str, token: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """POST to one of the app's admin endpoints (a guarded action's change) with the admin bearer token; its
    JSON answer, or Unreachable in one line that never quotes the token."""
    body, _ = request_json("POST", url, {"Authorization": f"Bearer {token}"}, timeout_s, json=payload)
    return body if isinstance(body, dict) else {}
