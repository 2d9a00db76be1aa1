"""The external APIs workflows call (their connectors): one bounded request each, from the runbook's host."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd

from . import http
from .url import segment

COLUMNS = ["integration", "ok", "status", "latency_ms", "error"]


def probe(base_url: str, names: Iterable[str], timeout_s: float = 5.0) -> pd.DataFrame:
    """GET {base_url}/{name} for each integration: ok when it answers 200 in full within timeout_s (a total
    deadline), else why not, naming the URL that did not answer in time."""
    rows = []
    with http.Session() as session:
        for name in names:
            start = time.perf_counter()
            try:
                response = session.request("GET", f"{base_url.rstrip('/')}/{segment(name)}", timeout_s)
            except http.Unreachable as exc:
                rows.append({"integration": name, "ok": False, "status": None,
                             "latency_ms": (time.perf_counter() - start) * 1000, "error": str(exc)})
                continue
            ok = response.status_code == 200
            rows.append({"integration": name, "ok": ok, "status": response.status_code,
                         "latency_ms": (time.perf_counter() - start) * 1000,
                         "error": None if ok else f"HTTP {response.status_code}: {response.text[:150]}"})
    return pd.DataFrame(rows, columns=COLUMNS)


def probe_of(env, integrations: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """Probe the integrations named in `integrations` (its `integration` column) at the profile's `integrations`
    URL; (None, why) when the profile names none or the database could not say which integrations are used."""
    base = env.urls.get("integrations")
    if not base:
        return None, "the profile's urls name no `integrations` base URL"
    if integrations.attrs.get("error"):
        return None, f"the integrations in use could not be read: {integrations.attrs['error']}"
    return probe(base, list(integrations["integration"])), ""
