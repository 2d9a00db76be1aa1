"""The console's frame: what its handlers share (Console), the middleware every /console request passes (who is
asking, the rate limit, security headers, the secrets redacted from every byte sent), login and logout, and
add_frame, which puts these routes on serve's app (site.py mounts the whole console).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import notify, paths
from ..errors import UsageError
from ..printable import printable
from ..records import append_jsonl
from ..runner.redact import redact_text, secret_values
from ..runner.store import Archive, archive_secrets, open_archive
from ..settings import environment_names, load_environment
from . import auth
from .users import Users, default_path

PREFIX = "/console"
PUBLIC = {f"{PREFIX}/login"}                 # the only console paths without a user
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
NAV = [("Runs", f"{PREFIX}/"), ("Schedules", f"{PREFIX}/schedules"), ("Approvals", f"{PREFIX}/approvals")]
MAX_AUDIT_TEXT = 300
REDACTED = "aias_console_redacted"   # a response's mark: its text was redacted already
_templates = Environment(loader=PackageLoader("aias_runbooks.console", "templates"), autoescape=select_autoescape(
    ["html"], default_for_string=True, default=True))


@dataclass
class Console:
    """What the console's handlers share: the local report root (audit.jsonl, approvals/, .console/audit.jsonl),
    the archive (a folder or s3://...), the secrets no page may show, serve's `say`, and the authentication
    state."""

    output: Path
    archive: str
    secrets: list[str]
    say: Callable[[str], None]
    auth: auth.Auth = field(default=None)   # type: ignore[assignment]
    archive_credentials: dict[str, str] = field(default_factory=dict, repr=False)
    _store: Archive | None = field(default=None, repr=False)
    _masks: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._masks = secret_values(self.secrets)
        if self.auth is None:
            self.auth = auth.Auth(Users(default_path()))

    def store(self) -> Archive:
        """The archive, opened once."""
        if self._store is None:
            self._store = open_archive(self.archive, self.archive_credentials or None)
        return self._store

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        """A page: the template rendered with the user, their CSRF token and the nav (every value escaped), then
        every secret masked."""
        page = _templates.get_template(template).render(
            user=request.get("user"), csrf=request.get("csrf") or "", nav=NAV, path=request.path, **context)
        response = web.Response(text=self.redact(page), status=status, content_type="text/html", charset="utf-8")
        response[REDACTED] = True   # the middleware need not scan it again
        return response

    def redact(self, text: str) -> str:
        """text with every secret the console knows masked."""
        return redact_text(text, self._masks)[0] if self._masks else text

    def audit(self, request: web.Request | None, action: str, **fields: Any) -> None:
        """One JSON line in <output>/.console/audit.jsonl: when, who (and from where), the action, `fields`;
        every value redacted and cut to one short line."""
        user = request.get("user") if request is not None else None
        line: dict[str, Any] = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                "user": user.name if user else None, "role": user.role if user else None,
                                "remote": request.remote if request is not None else None, "action": action}
        line |= {k: self._clean(v) for k, v in fields.items()}
        path = self.output / ".console" / "audit.jsonl"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        append_jsonl(path, line)

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        text = printable(self.redact(value if isinstance(value, str) else json.dumps(value, default=str)))
        return text if len(text) <= MAX_AUDIT_TEXT else text[:MAX_AUDIT_TEXT - 3] + "..."


CONSOLE_KEY = web.AppKey("console", Console)


def console_for(environment: str, output: Path, say: Callable[[str], None],
                known_secrets: list[str] | None = None) -> Console:
    """The console of serve's profile `environment`: its `console:` settings (users_file, trusted_header,
    trusted_from), its `archive` (default the output folder), and the secrets of every profile. UsageError (one
    line) for a bad setting: serve does not start with a console it cannot secure."""
    profile = load_environment(environment)
    where = paths.params_dir() / "environments" / f"{environment}.yaml"
    raw = yaml.safe_load(where.read_text()) or {}
    settings = raw.get("console") or {}
    if not isinstance(settings, dict):
        raise UsageError(f"{where}: console must be a mapping (users_file, trusted_header, trusted_from)")
    users_file = Path(str(settings.get("users_file") or default_path()))
    if not users_file.is_absolute():
        users_file = paths.project_root() / users_file
    header = settings.get("trusted_header")
    if header is not None and (not isinstance(header, str) or not header.strip() or not header.isascii()):
        raise UsageError(f"{where}: console.trusted_header must be a header name (e.g. X-Forwarded-User)")
    try:
        trusted_from = auth.networks(settings.get("trusted_from"))
        users = Users(users_file)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if header and not trusted_from:
        raise UsageError(f"{where}: console.trusted_header needs console.trusted_from (the proxy's addresses, "
                         "e.g. [127.0.0.1/32]): a header from anyone else is never believed")
    return Console(output, profile.archive or str(output), _all_secrets(known_secrets or []), say,
                   auth.Auth(users, header or None, trusted_from), archive_secrets(profile))


def _all_secrets(known: list[str]) -> list[str]:
    """`known` and every secret of every profile: a run of any environment may be shown."""
    values = list(known)
    for name in environment_names():
        with contextlib.suppress(UsageError, OSError, ValueError):
            values += notify.secrets_of(load_environment(name))
    return sorted(set(values))


def add_frame(app: web.Application, console: Console) -> None:
    """The console's frame on serve's app: login, logout and /console, behind the middleware that identifies every
    /console request (site.mount adds the pages on it)."""
    app[CONSOLE_KEY] = console
    app.middlewares.append(_middleware(console))
    app.add_routes([web.get(f"{PREFIX}/login", _login_page(console)), web.post(f"{PREFIX}/login", _login(console)),
                    web.post(f"{PREFIX}/logout", _logout(console)),
                    web.get(PREFIX, auth.requires("viewer")(_to_runs))])


async def _to_runs(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def _middleware(console: Console) -> Any:
    """Every /console request: refused 429 while its address is locked out, identified (request["user"],
    request["csrf"]), refused 401 without a user (but the login page); every response gets the security headers
    and, when it is text, every secret masked."""

    @web.middleware
    async def identify(request: web.Request, handler: Any) -> web.StreamResponse:
        if not (request.path == PREFIX or request.path.startswith(f"{PREFIX}/")):
            return await handler(request)
        try:
            response = await _handled(console, request, handler)
        except web.HTTPException as exc:
            _secure(exc)
            raise
        return _finished(console, response)

    return identify


async def _handled(console: Console, request: web.Request, handler: Any) -> web.StreamResponse:
    address = request.remote or "?"
    if wait := console.auth.retry_after(address):
        return _locked_out(console, request, address, wait)
    user, csrf, bad = console.auth.identify(request)
    if bad:
        console.auth.failed(address)
        if wait := console.auth.retry_after(address):
            return _locked_out(console, request, address, wait)
        raise web.HTTPUnauthorized(text="wrong token: send Authorization: Bearer <a token from `aias-runbooks "
                                   "console add-user`>, or log in at /console/login\n")
    request["user"], request["csrf"] = user, csrf
    if user is None and request.path not in PUBLIC:
        return console.render(request, "error.html", 401, title="Log in", message="This page needs a user: log in "
                              "with your console token.", login=True)
    return await handler(request)


def _locked_out(console: Console, request: web.Request, address: str, wait: int) -> web.Response:
    if console.auth.first_lockout(address):
        console.audit(request, "locked_out", reason=f"{auth.MAX_FAILURES} failed logins or bad tokens within "
                      f"{auth.WINDOW_S} s", retry_after_s=wait)
    return web.Response(status=429, text=f"too many failed logins or bad tokens from {address}; try again in "
                        f"{wait} s\n", headers={"Retry-After": str(wait)})


def _finished(console: Console, response: web.StreamResponse) -> web.StreamResponse:
    _secure(response)
    if isinstance(response, web.Response) and not response.get(REDACTED) and isinstance(response.body, bytes) and \
            (response.content_type.startswith("text/") or response.content_type.endswith("json")):
        text = response.body.decode(response.charset or "utf-8", "replace")
        response.body = console.redact(text).encode(response.charset or "utf-8")
    return response


def _secure(response: web.StreamResponse | web.HTTPException) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")


# --- login, logout -------------------------------------------------------------------------------------------------

def _login_page(console: Console) -> Any:
    async def login_page(request: web.Request, message: str = "", status: int = 200) -> web.StreamResponse:
        if request.get("user") is not None and not message:
            raise web.HTTPSeeOther(f"{PREFIX}/")   # logged in already (or a proxy's or a bearer user)
        request["user"] = None                     # the form's page: no nav, no logout form with this token
        token = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_urlsafe(32)
        request["csrf"] = token
        response = console.render(request, "login.html", status, message=message)
        response.set_cookie(auth.LOGIN_COOKIE, token, httponly=True, samesite="Strict", path=f"{PREFIX}/login")
        return response
    return login_page


def _login(console: Console) -> Any:
    page = _login_page(console)

    async def login(request: web.Request) -> web.StreamResponse:
        data = await request.post()
        expected = request.cookies.get(auth.LOGIN_COOKIE, "")
        given = data.get("csrf")
        if not expected or not isinstance(given, str) or not hmac.compare_digest(given, expected):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: log in with the form as /console/login "
                                    "serves it\n")
        token = data.get("token")
        made = console.auth.login(token) if isinstance(token, str) else None
        address = request.remote or "?"
        if made is None:
            console.auth.failed(address)
            console.audit(request, "login_failed")
            if wait := console.auth.retry_after(address):
                return _locked_out(console, request, address, wait)
            return await page(request, "That token is not valid: paste the token `aias-runbooks console add-user` "
                              "printed.", 401)
        sid, session = made
        request["user"] = session.user
        console.audit(request, "login")
        response = web.HTTPSeeOther(f"{PREFIX}/")
        response.set_cookie(auth.COOKIE, sid, httponly=True, samesite="Strict", path=PREFIX,
                            max_age=auth.SESSION_HOURS * 3600)
        response.del_cookie(auth.LOGIN_COOKIE, path=f"{PREFIX}/login")
        raise response
    return login


def _logout(console: Console) -> Any:
    @auth.requires("viewer")
    async def logout(request: web.Request) -> web.StreamResponse:
        await auth.form(request)
        console.auth.logout(request)
        console.audit(request, "logout")
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(auth.COOKIE, path=PREFIX)
        raise response
    return logout
