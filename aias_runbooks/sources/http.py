"""Every HTTP request the runbooks make (probes, Stripe, Vercel, Resend, status pages, integrations,
notifications): one helper, a total deadline per request and a budget per run section.

httpx's timeouts are per socket operation: a server that sends its answer a byte at a time never trips one, and a
request to it never ends. Here each request has a *total* deadline: every socket operation of it (connect, TLS,
each write, each read of the headers and of the body) is given only the time left, and none is started once it
has passed. A notebook cell is a run section: runbook.start() opens a budget at the start of each cell (most of
the runner's cell timeout, section_budget_s()), and no request of the cell, in any thread, outlives it; so a
section calling several targets ends by naming the one that did not answer, before the cell timeout ends the run
with nothing said. DNS resolution is the resolver's own business and is not bounded here.

A request that does not answer in full in time raises TooSlow, naming the URL and the seconds it was given;
any other failure to get an answer is NoAnswer (refused, reset, unresolvable), NotSent when the request itself
cannot be made (a credential no header can carry). All are Unreachable, one line, never quoting a credential.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpcore
import httpx

USER_AGENT = "aias-runbooks"
SECTION_SHARE = 0.8     # a run section's budget: this share of the runner's cell timeout (the rest: its findings)
SECTION_S = 240.0       # ... and by hand, where no cell timeout is set (0.8 of the runner's default 300 s)
CELL_TIMEOUT_VAR = "AIAS_CELL_TIMEOUT_S"   # set by the runner for the run's kernel


class Unreachable(Exception):
    """The service did not answer usefully: refused, timed out, an error status or not JSON; one line, no secret."""


class NoAnswer(Unreachable):
    """No answer came back from `url`: `kind` says how it failed (ConnectError, ReadError, ...), `reason` in full."""

    def __init__(self, url: str, kind: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"no answer from {url}: {reason}"[:300])
        self.url, self.kind, self.reason = url, kind, reason


class TooSlow(NoAnswer):
    """`url` did not answer in full within the `seconds` it was given (its deadline, or what was left of the run
    section's budget): silent, or sending its answer a byte at a time."""

    def __init__(self, url: str, seconds: float, budget: float | None = None) -> None:
        if budget is not None and seconds <= 0:
            reason = f"not asked: this section's {budget:g} s budget is spent"
        else:
            reason = f"no complete answer within {seconds:.3g} s" + (
                f" (what was left of this section's {budget:g} s budget)" if budget is not None else "")
        super().__init__(url, "deadline", reason, f"{url}: {reason}")
        self.seconds, self.budget = seconds, budget


class NotSent(Unreachable):
    """The request could not be made: a header (a credential?) or the URL is not valid; never quoted."""

    def __init__(self, url: str, kind: str) -> None:
        super().__init__(f"request to {url} not sent: a header (the credential?) or the URL is not valid ({kind})")
        self.url, self.kind = url, kind


# -- deadlines: of the request under way in this thread, and of the run section --------------------------------

_request = threading.local()            # .ends: the monotonic time the request under way in this thread must end by
_section: tuple[float, float] | None = None   # (monotonic end, budget in seconds) of the run section under way


def section_budget_s() -> float:
    """A run section's budget: SECTION_SHARE of the cell timeout the runner gives each cell, else SECTION_S."""
    try:
        cell = float(os.environ.get(CELL_TIMEOUT_VAR, ""))
    except ValueError:
        return SECTION_S
    return SECTION_SHARE * cell if cell > 0 else SECTION_S


def start_section(*_: Any) -> None:
    """Open a run section's budget from now (IPython calls it before each cell: see runbook.start)."""
    global _section
    budget = section_budget_s()
    _section = (time.monotonic() + budget, budget)


def section_left() -> float | None:
    """Seconds left of the run section's budget, or None outside a run section."""
    return None if _section is None else _section[0] - time.monotonic()


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for one socket operation: no more than what is left of this thread's request deadline."""
    ends = getattr(_request, "ends", None)
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write keeps to the deadline of the request using it."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own sockets (SyncBackend), connected within the deadline and wrapped in _Stream."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout), local_address,
                                               socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()   # certifi's roots (or SSL_CERT_FILE): built once, not per request


class _Transport(httpx.HTTPTransport):
    """httpx's HTTP transport over a connection pool of _Backend's connections. (HTTPTransport takes no network
    backend, and its __init__ only builds its pool: this builds that pool instead.)"""

    def __init__(self) -> None:  # noqa: D107 - HTTPTransport.__init__ is replaced, not extended
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=_Backend())


# -- requests -------------------------------------------------------------------------------------------------


class Session:
    """Requests over kept-open connections (a probe's samples, Stripe's pages), each within its own total deadline.
    Environment proxy settings are not used (every connection must keep the deadline)."""

    def __init__(self) -> None:
        self._client = httpx.Client(transport=_Transport(), trust_env=False, headers={"User-Agent": USER_AGENT})

    def request(self, method: str, url: str, deadline_s: float, headers: Mapping[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        """The whole answer (status, headers, body) to one request, within deadline_s seconds from now and within
        what is left of the run section's budget; TooSlow, NoAnswer or NotSent when there is none."""
        start = time.monotonic()
        ends, budget = start + deadline_s, None
        if _section is not None and _section[0] < ends:
            ends, budget = _section
        if ends <= start:
            raise TooSlow(url, 0.0, budget)
        _request.ends = ends
        try:
            return self._client.request(method, url, headers=headers, timeout=ends - start, **kwargs)
        except httpx.TimeoutException:
            raise TooSlow(url, ends - start, budget) from None
        except httpx.HTTPError as exc:
            raise NoAnswer(url, type(exc).__name__, f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        except (UnicodeEncodeError, ValueError, httpx.InvalidURL) as exc:   # never quoted: it may hold the credential
            raise NotSent(url, type(exc).__name__) from None
        finally:
            _request.ends = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def request(method: str, url: str, deadline_s: float, headers: Mapping[str, str] | None = None,
            **kwargs: Any) -> httpx.Response:
    """One request on a connection of its own: Session.request."""
    with Session() as session:
        return session.request(method, url, deadline_s, headers, **kwargs)


def request_json(method: str, url: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0,
                 **kwargs: Any) -> tuple[Any, float]:
    """(the JSON body, milliseconds taken), all of it within timeout_s; Unreachable on no answer in time, a status
    >= 400 or a body that is not JSON."""
    start = time.perf_counter()
    response = request(method, url, timeout_s, headers, **kwargs)
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
