"""Resend (REST API): the sending domains' verification and the recent emails' last event."""

from __future__ import annotations

import pandas as pd

from ..settings import Environment
from .http import Unreachable, request_json


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
        """Each sending domain with its status (verified, pending, not_started, failed, partially_verified, ...);
        empty when the account has none. An answer without its `data` list is Unreachable: read as an empty list
        it would say the account has no domain."""
        answer = self._get("/domains")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise Unreachable(f"{self.api_base}/domains answered without a list of domains (no `data` list)")
        return pd.DataFrame(data, columns=["id", "name", "status", "region", "created_at"])

    def emails(self, limit: int = 100) -> pd.DataFrame:
        """The latest emails sent, newest first, with their last event (delivered, bounced, complained, ...)."""
        frame = pd.DataFrame(self._get("/emails", limit=limit).get("data", []),
                             columns=["id", "to", "from", "subject", "created_at", "last_event"])
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame


def resend_of(env: Environment, timeout_s: float = 10.0) -> tuple[Resend | None, str]:
    """(a Resend client for the profile, "") or (None, why not: no key or no `resend_api` url)."""
    key = env.secret("resend_api_key")
    if key is None:
        return None, env.missing_secret_message("resend_api_key")
    if not env.urls.get("resend_api"):
        return None, "no `resend_api` url in the profile"
    return Resend(key.reveal(), env.urls["resend_api"], timeout_s), ""


def read(env: Environment, timeout_s: float = 10.0) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """(domains, recent emails, "") from the profile's Resend, or (None, None, why not: unconfigured, unreachable);
    each request gives up after timeout_s."""
    resend, problem = resend_of(env, timeout_s)
    if resend is None:
        return None, None, problem
    try:
        return resend.domains(), resend.emails(), ""
    except Unreachable as exc:
        return None, None, str(exc)
