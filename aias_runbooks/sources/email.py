"""Resend (REST API): the sending domains' verification and the recent emails' last event."""

from __future__ import annotations

import pandas as pd

from .http import request_json


class Resend:
    """Resend's API with one API key."""

    def __init__(self, api_key: str, api_base: str = "https://api.resend.com", timeout_s: float = 10.0) -> None:
        self.api_base, self._key, self.timeout_s = api_base.rstrip("/"), api_key, timeout_s

    def __repr__(self) -> str:
        return f"Resend(api_base={self.api_base!r})"

    def _get(self, path: str, **params) -> dict:
        return request_json("GET", self.api_base + path, {"Authorization": f"Bearer {self._key}"}, self.timeout_s,
                            params=params)[0]

    def domains(self) -> pd.DataFrame:
        """Each sending domain with its status (verified, pending, not_started, failed, temporary_failure)."""
        return pd.DataFrame(self._get("/domains").get("data", []), columns=["id", "name", "status", "region",
                                                                            "created_at"])

    def emails(self, limit: int = 100) -> pd.DataFrame:
        """The latest emails sent, newest first, with their last event (delivered, bounced, complained, ...)."""
        frame = pd.DataFrame(self._get("/emails", limit=limit).get("data", []),
                             columns=["id", "to", "from", "subject", "created_at", "last_event"])
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame
