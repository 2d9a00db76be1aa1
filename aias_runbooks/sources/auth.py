"""Supabase Auth (GoTrue): does /auth/v1/health answer?"""

from __future__ import annotations

from ..settings import Environment
from .http import Unreachable, request_json


def health(supabase_url: str, anon_key: str, timeout_s: float = 5.0) -> dict:
    """{"ok", "latency_ms", "version" or "error"} for GET <supabase>/auth/v1/health (the anon key as `apikey`)."""
    try:
        body, took = request_json("GET", f"{supabase_url.rstrip('/')}/auth/v1/health", {"apikey": anon_key},
                                  timeout_s)
    except Unreachable as exc:
        return {"ok": False, "latency_ms": None, "error": str(exc)}
    return {"ok": True, "latency_ms": round(took, 1), "version": body.get("version"), "name": body.get("name")}


def health_of(env: Environment, timeout_s: float = 5.0) -> tuple[dict | None, str]:
    """(health, "") for the profile's Supabase, or (None, why it was not checked)."""
    key = env.secret("supabase_anon_key")
    if key is None:
        return None, env.missing_secret_message("supabase_anon_key")
    if not env.urls.get("supabase"):
        return None, "no `supabase` url in the profile"
    return health(env.urls["supabase"], key.reveal(), timeout_s), ""
