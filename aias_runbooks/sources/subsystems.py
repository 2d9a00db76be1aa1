"""Every subsystem the platform depends on, asked at once (System Down).

Each source call runs in a thread of its own with its own timeout, so the whole check lasts about as long as the
slowest timeout, never their sum, and a call still running at the deadline is reported as not answering instead
of being waited for. The database is asked meanwhile in the calling thread, through the runbook's one connection,
so its findings (DB_UNREACHABLE, ...) are recorded and shown where the notebook expects them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import api, auth, deploys, email, status_pages

if TYPE_CHECKING:
    from ..runbook import Runbook
    from ..settings import Environment

API_STAGGER_S = 0.2   # the health samples go out this far apart, so one dropped packet is not an outage


@dataclass
class Probe:
    """One call's outcome: what the source returned, or why nothing came back (raised, or no answer in time)."""

    name: str
    result: Any = None
    error: str | None = None
    took_ms: float | None = None


def at_once(calls: dict[str, Callable[[], Any]], deadline_s: float,
            meanwhile: Callable[[], Any] | None = None) -> tuple[dict[str, Probe], Any]:
    """({name: Probe}, what meanwhile() returned): every call started in its own thread, meanwhile() run in this
    one, then each call waited for until deadline_s after the start. A call still running then is left to end at
    its own requests' deadlines (its thread is not joined) and reported as not answering within the deadline."""
    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, len(calls)), thread_name_prefix="aias-probe")
    futures: dict[str, Future] = {name: pool.submit(_timed, call) for name, call in calls.items()}
    try:
        alongside = meanwhile() if meanwhile else None
        wait(futures.values(), timeout=max(0.0, deadline_s - (time.perf_counter() - start)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    probes = {}
    for name, future in futures.items():
        if not future.done():
            probes[name] = Probe(name, error=f"no complete answer within the {deadline_s:g} s deadline")
            continue
        try:
            result, took = future.result()
            probes[name] = Probe(name, result, None, took)
        except Exception as exc:  # noqa: BLE001 - a subsystem that fails is a finding, never a traceback
            probes[name] = Probe(name, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    return probes, alongside


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, round((time.perf_counter() - start) * 1000, 1)


def probe(rb: Runbook, timeout_s: float = 3.0, api_samples: int = 3, more: dict[str, Callable[[], Any]] | None = None,
          meanwhile: Callable[[], Any] | None = None) -> tuple[dict[str, Any], Any]:
    """({subsystem: what it answered}, the database's SELECT 1 round trips): the API's /api/healthz
    (`api_samples` requests, API_STAGGER_S apart), Vercel's production deployments, Supabase Auth's health and
    every status page of the profile, each bounded by timeout_s, all at once; the database meanwhile.

    What did not answer by the deadline is reported in the source's own shape (an unanswered health sample, a
    deployment read's reason, an unreadable status page), so the usual checks judge it. `more` adds calls asked
    with them (each one's Probe under its name in the first dict); `meanwhile` replaces the database's three
    round trips (what it returns is the second value).
    """
    env = rb.env
    pages = status_pages.pages_of(env.urls)
    calls: dict[str, Callable[[], Any]] = {
        f"api#{i}": _api_sample(env.api_base_url, i, timeout_s) for i in range(api_samples)}
    calls["vercel"] = lambda: deploys.read(env, timeout_s=timeout_s)
    calls["auth"] = lambda: auth.health_of(env, timeout_s=timeout_s)
    calls |= {f"status:{service}": (lambda p={service: url}: status_pages.summary(p, timeout_s=timeout_s))
              for service, url in pages.items()}
    calls |= more or {}
    deadline = timeout_s + API_STAGGER_S * api_samples + 1.0   # the slowest call's own bound, and a margin
    probes, db = at_once(calls, deadline, meanwhile or (lambda: rb.ping(samples=3, interval_ms=0)))

    samples = [p.result if p.result is not None else _unanswered(i, p.error)
               for i, p in enumerate(probes[f"api#{i}"] for i in range(api_samples))]
    api_frame = pd.concat(samples, ignore_index=True) if samples else pd.DataFrame(columns=api.COLUMNS)
    api_frame["sample"] = range(1, len(api_frame) + 1)
    api_frame.attrs.update(url=env.api_base_url.rstrip("/") + "/api/healthz", requested=api_samples,
                           stopped_early=False)
    vercel = probes["vercel"]
    frames = [p.result if p.result is not None else _unreadable(name.removeprefix("status:"), p.error)
              for name, p in probes.items() if name.startswith("status:")]
    answered = {
        "api": api_frame,
        "vercel": vercel.result if vercel.result is not None else (None, vercel.error),
        "auth": probes["auth"].result if probes["auth"].result is not None else (
            {"ok": False, "latency_ms": None, "error": probes["auth"].error}, ""),
        "status_pages": (pd.concat(frames, ignore_index=True) if frames
                         else pd.DataFrame(columns=status_pages.COLUMNS)),
        "took_ms": {name: p.took_ms for name, p in probes.items()},
    } | {name: probes[name] for name in more or {}}
    return answered, db


def _api_sample(base_url: str, index: int, timeout_s: float) -> Callable[[], pd.DataFrame]:
    def sample() -> pd.DataFrame:
        time.sleep(index * API_STAGGER_S)
        return api.probe(base_url, "/api/healthz", samples=1, interval_ms=0, timeout_s=timeout_s)
    return sample


def _unanswered(index: int, error: str | None) -> pd.DataFrame:
    return pd.DataFrame([{"sample": index + 1, "sent_at": pd.Timestamp.now(tz="UTC"), "status": None,
                          "answered": False, "latency_ms": None, "ok": False, "error": error}], columns=api.COLUMNS)


def _unreadable(service: str, error: str | None) -> pd.DataFrame:
    return pd.DataFrame([{"service": service, "indicator": None, "description": None, "incidents": None,
                          "degraded_components": None, "error": error}], columns=status_pages.COLUMNS)


def services(env: Environment, since: datetime, event_types: list[str],
             timeout_s: float) -> dict[str, Callable[[], Any]]:
    """The full system check's calls beside probe()'s (its `more`): Stripe's events of `event_types` since `since`
    (None without a key) and Resend's (domains, latest emails, problem); each request bounded by timeout_s."""
    return {"stripe": lambda: _stripe_events(env, since, event_types, timeout_s),
            "resend": lambda: email.read(env, timeout_s=timeout_s)}


def _stripe_events(env: Environment, since: datetime, event_types: list[str],
                   timeout_s: float) -> pd.DataFrame | None:
    from .stripe import StripeClient
    key = env.secret("stripe_secret_key")
    if key is None:
        return None
    return StripeClient(key.reveal(), env.stripe_api_base, timeout_s).events(since, event_types)


def stripe_events(rb: Runbook, answer: Probe) -> pd.DataFrame | None:
    """What the Stripe call of probe() answered, through rb.from_stripe: STRIPE_NOT_CONFIGURED or
    STRIPE_UNREACHABLE (a failure, or no answer by the deadline) is recorded as the billing runbooks record it."""
    from .stripe import StripeUnavailable

    def replay(_client: Any) -> pd.DataFrame | None:
        if answer.error:
            raise StripeUnavailable(answer.error.removeprefix("StripeUnavailable: "))
        return answer.result
    return rb.from_stripe(replay)


def database(rb: Runbook, window_minutes: int, leak_min_idle_s: int, statements_window_s: float) -> dict[str, Any]:
    """The full system check's database part (probe()'s `meanwhile`), through the run's one read-only session:
    SELECT 1 round trips, the pool (limits, sessions by state, leaks), the window's requests per minute, the
    webhook endpoint's log and the app's email failures, then pg_stat_statements over a recent window of
    statements_window_s (None when it is not available)."""
    from . import statements
    read = {"ping": rb.ping(samples=3, interval_ms=0),
            "limits": rb.query("connection_limits"), "by_state": rb.query("connections_by_state"),
            "leaked": rb.query("idle_in_transaction", min_idle_s=leak_min_idle_s, application=None),
            "requests": rb.query("error_rate_per_minute", window_minutes=window_minutes),
            "webhook_log": rb.query("webhook_requests", window_minutes=window_minutes),
            "email_errors": rb.query("email_errors", window_minutes=window_minutes),
            "pgss": rb.query("pg_stat_statements_status")}
    rule = rb.thresholds["db_statements"]
    read["statements"] = (statements.window(rb.query, read["pgss"], statements_window_s, rule["min_calls"], rule["top"])
                          if statements.available(read["pgss"]) else None)
    return read
