"""The AIAS API over HTTP: sample an endpoint and summarise what came back."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pandas as pd

from . import http

if TYPE_CHECKING:
    import httpx

# Fields of an error body that differ on every answer (a clock, a request id): left out of the error text.
VOLATILE_KEYS = {"time", "timestamp", "date", "now", "request_id", "requestid", "trace_id"}
COLUMNS = ["sample", "sent_at", "status", "answered", "latency_ms", "ok", "error"]


def probe(base_url: str, path: str = "/api/healthz", samples: int = 20, interval_ms: int = 100,
          timeout_s: float = 5.0, max_consecutive_failures: int = 3) -> pd.DataFrame:
    """GET base_url+path `samples` times; one row per sample with status, latency and whether the body said ok.
    Each sample is one request with a total deadline of timeout_s (an answer not complete by then failed).

    Stops early after `max_consecutive_failures` samples in a row failed, unanswered or answered with an
    error (a 503 because the API's database is down): the outage is established by then, and more waiting
    (each error may itself wait for a database timeout) only delays the page. In a run section, no sample after
    the first is sent whose deadline the section's budget cannot hold: attrs["budget_s"] then says the budget cut
    the probe short.
    """
    url = base_url.rstrip("/") + path
    rows: list[dict] = []
    failures_in_a_row, budget_s = 0, None
    with http.Session() as session:
        for i in range(1, samples + 1):
            left = http.section_left()
            if rows and left is not None and left < timeout_s:
                budget_s = http.section_budget_s()
                break
            rows.append(_sample(session, url, i, timeout_s))
            failures_in_a_row = 0 if rows[-1]["ok"] else failures_in_a_row + 1
            if failures_in_a_row >= max_consecutive_failures:
                break
            if i < samples and interval_ms:
                time.sleep(interval_ms / 1000)
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"status": "Int64"})
    frame.attrs.update(url=url, requested=samples, stopped_early=len(rows) < samples and budget_s is None,
                       budget_s=budget_s)
    return frame


def _sample(session: http.Session, url: str, index: int, timeout_s: float) -> dict:
    sent_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    try:
        response = session.request("GET", url, timeout_s)
    except http.Unreachable as exc:
        return {"sample": index, "sent_at": sent_at, "status": None, "answered": False,
                "latency_ms": (time.perf_counter() - start) * 1000, "ok": False, "error": str(exc)}
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

