"""Who is asking: every /console request but the login page needs a user, from (in this order) a trusted reverse
proxy's header (only from the profile's trusted_from addresses), an `Authorization: Bearer <token>` header, or a
session cookie made by the login form. Roles rank viewer < operator < approver.

A client address with MAX_FAILURES failed logins or bad bearer tokens within WINDOW_S seconds is answered 429 with
Retry-After until the window passes (audited once). Every POST carries the CSRF token of its user's session
(`form()`): a random one per login session; for a bearer or trusted-header user an HMAC of the name under a key
made at start, so a page from another site can never know it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from .users import ROLES, Users

COOKIE = "aias_console"
LOGIN_COOKIE = "aias_console_login"    # the login form's own CSRF token (double submit: no session yet)
SESSION_HOURS = 12
MAX_FAILURES = 5
WINDOW_S = 60
MAX_ADDRESSES = 10_000   # addresses with failures held before the quiet ones are forgotten
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class User:
    """Who a request is from: its name and role ("viewer" | "operator" | "approver")."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """True when this user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass
class Session:
    user: User
    csrf: str
    expires: float


@dataclass
class Auth:
    """The console's authentication state: the users file, the sessions (in memory: a restart logs everyone out),
    the trusted proxy header and the failures per client address."""

    users: Users
    trusted_header: str | None = None
    trusted_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)
    locked_audited: dict[str, float] = field(default_factory=dict)

    def identify(self, request: web.Request) -> tuple[User | None, str | None, bool]:
        """(user, its CSRF token, whether a credential was offered and was wrong)."""
        if self.trusted_header and self.trusted(request.remote):
            name = request.headers.get(self.trusted_header, "").strip()
            if name:
                account = self.users.by_name(name)
                if account is None:
                    return None, None, False
                user = User(account.name, account.role)
                return user, self._derived("header", user.name), False
        bearer = request.headers.get("Authorization", "")
        if bearer:
            scheme, _, token = bearer.partition(" ")
            account = self.users.by_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            if account is None or not account.token_sha256:
                return None, None, True
            user = User(account.name, account.role)
            return user, self._derived("bearer", user.name), False
        session = self.session(request)
        return (session.user, session.csrf, False) if session else (None, None, False)

    def trusted(self, remote: str | None) -> bool:
        """True when the peer address is within trusted_from."""
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        return any(address in network for network in self.trusted_from)

    def session(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid) if sid else None
        if session is not None and session.expires < time.time():
            self.sessions.pop(sid, None)
            return None
        return session

    def login(self, token: str) -> tuple[str, Session] | None:
        """A new session for the token's user, or None for a wrong token."""
        account = self.users.by_token(token.strip()) if token.strip() else None
        if account is None:
            return None
        now = time.time()
        for stale in [sid for sid, s in self.sessions.items() if s.expires < now]:
            del self.sessions[stale]
        sid = secrets.token_urlsafe(32)
        session = Session(User(account.name, account.role), secrets.token_urlsafe(32),
                          time.time() + SESSION_HOURS * 3600)
        self.sessions[sid] = session
        return sid, session

    def logout(self, request: web.Request) -> None:
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)

    def _derived(self, kind: str, name: str) -> str:
        return hmac.new(self.key, f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()

    # --- rate limit ------------------------------------------------------------------------------------------

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again (0: it may now)."""
        now = time.monotonic()
        seen = self.failures.get(address)
        if not seen:
            return 0
        while seen and seen[0] <= now - WINDOW_S:
            seen.popleft()
        if len(seen) < MAX_FAILURES:
            return 0
        return max(1, int(seen[-MAX_FAILURES] + WINDOW_S - now + 0.999))

    def failed(self, address: str) -> None:
        """Count one failed login or bad token from `address` (addresses with none in the window are forgotten
        once many are held)."""
        if len(self.failures) >= MAX_ADDRESSES:
            for quiet in [a for a in self.failures if not self.retry_after(a) and a != address]:
                del self.failures[quiet]
        self.failures.setdefault(address, deque(maxlen=MAX_FAILURES * 4)).append(time.monotonic())

    def first_lockout(self, address: str) -> bool:
        """True the first time `address` is refused in this lockout (to audit it once)."""
        now = time.monotonic()
        if self.locked_audited.get(address, 0) > now:
            return False
        self.locked_audited[address] = now + self.retry_after(address)
        return True


def networks(cidrs: list[Any] | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The trusted_from CIDRs; ValueError naming a bad one."""
    found = []
    for cidr in cidrs or []:
        try:
            found.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            raise ValueError(f"console.trusted_from: {cidr!r} is not a CIDR; valid: e.g. 127.0.0.1/32, "
                             "10.0.0.0/8, ::1/128") from None
    return tuple(found)


def requires(role: str) -> Callable[[Handler], Handler]:
    """Decorator: the handler runs only for a user of `role` or above (request["user"]); no user -> 401 page,
    a lower role -> 403 with one line."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            user: User | None = request.get("user")
            if user is None:
                raise web.HTTPUnauthorized(text="no user: log in at /console/login or send Authorization: Bearer "
                                           "<token>\n")
            if not user.may(role):
                raise web.HTTPForbidden(text=f"{user.name} is a {user.role}; this needs the {role} role or above\n")
            return await handler(request)
        checked.required_role = role   # type: ignore[attr-defined]  (read by the route tests)
        return checked
    return wrap


async def form(request: web.Request) -> MultiDictProxy:
    """The POST body, once its `csrf` field is the user's CSRF token; else 403 with one line."""
    data = await request.post()
    expected = request.get("csrf")
    given = data.get("csrf")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: post the form as the console serves it (its "
                                "hidden csrf field)\n")
    return data
