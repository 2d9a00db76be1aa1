"""The AIAS API over HTTP: sample an endpoint and summarise what came back."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pandas as pd

# Fields of an error body that differ on every answer (a clock, a request id): left out of the error text.
VOLATILE_KEYS = {"time", "timestamp", "date", "now", "request_id", "requestid", "trace_id"}
COLUMNS = ["sample", "sent_at", "status", "answered", "latency_ms", "ok", "error"]


def probe(base_url: str, path: str = "/api/healthz", samples: int = 20, interval_ms: int = 100,
          timeout_s: float = 5.0, max_consecutive_failures: int = 3) -> pd.DataFrame:
    """GET base_url+path `samples` times; one row per sample with status, latency and whether the body said ok.

    Stops early after `max_consecutive_failures` samples in a row failed, unanswered or answered with an
    error (a 503 because the API's database is down): the outage is established by then, and more waiting
    (each error may itself wait for a database timeout) only delays the page.
    """
    url = base_url.rstrip("/") + path
    rows: list[dict] = []
    failures_in_a_row = 0
    with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))) as client:
        for i in range(1, samples + 1):
            rows.append(_sample(client, url, i))
            failures_in_a_row = 0 if rows[-1]["ok"] else failures_in_a_row + 1
            if failures_in_a_row >= max_consecutive_failures:
                break
            if i < samples and interval_ms:
                time.sleep(interval_ms / 1000)
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"status": "Int64"})
    frame.attrs.update(url=url, requested=samples, stopped_early=len(rows) < samples)
    return frame


def _sample(client: httpx.Client, url: str, index: int) -> dict:
    sent_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    try:
        response = client.get(url, headers={"User-Agent": "aias-runbooks"})
    except httpx.HTTPError as exc:
        return {"sample": index, "sent_at": sent_at, "status": None, "answered": False,
                "latency_ms": (time.perf_counter() - start) * 1000, "ok": False,
                "error": f"{type(exc).__name__}: {exc}".rstrip(": ")}
    latency = (time.perf_counter() - start) * 1000
    ok, error = _body_ok(response)
    return {"sample": index, "sent_at": sent_at, "status": response.status_code, "answered": True,
            "latency_ms": round(latency, 2), "ok": ok, "error": error}


def _body_ok(response: httpx.Response) -> tuple[bool, str | None]:
    try:
        body = response.json()
    except ValueError:
        return False, f"HTTP {response.status_code}, body is not JSON: {response.text[:120]!r}"
    if response.is_success and isinstance(body, dict) and body.get("ok") is True:
        return True, None
    if isinstance(body, dict):   # without what changes on every answer, equal errors read the same and count
        body = {k: v for k, v in body.items() if str(k).lower() not in VOLATILE_KEYS}
    return False, f"HTTP {response.status_code}, body: {str(body)[:200]}"

