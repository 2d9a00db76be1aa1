"""Status pages in the statuspage.io shape (/api/v2/summary.json): Stripe, Supabase, Vercel, Resend."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .http import Unreachable, request_json

COLUMNS = ["service", "indicator", "description", "incidents", "degraded_components", "error"]


def summary(pages: Mapping[str, str], timeout_s: float = 5.0) -> pd.DataFrame:
    """One row per status page (profile urls `status_<service>`): its indicator (none, minor, major, critical),
    open incidents and degraded components; a page that cannot be read says why in `error`."""
    rows = []
    for service, base in pages.items():
        try:
            body, _ = request_json("GET", f"{base}/api/v2/summary.json", timeout_s=timeout_s)
        except Unreachable as exc:
            rows.append({"service": service, "indicator": None, "description": None, "incidents": None,
                         "degraded_components": None, "error": str(exc)})
            continue
        status = body.get("status") or {}
        rows.append({"service": service, "indicator": status.get("indicator"), "description": status.get("description"),
                     "incidents": "; ".join(i.get("name", "") for i in body.get("incidents") or []),
                     "degraded_components": ", ".join(c["name"] for c in body.get("components") or []
                                                      if c.get("status") != "operational"),
                     "error": None})
    return pd.DataFrame(rows, columns=COLUMNS)


def pages_of(urls: Mapping[str, str]) -> dict[str, str]:
    """The profile's status pages: urls named status_<service>, by service."""
    return {name.removeprefix("status_"): url for name, url in urls.items() if name.startswith("status_")}
