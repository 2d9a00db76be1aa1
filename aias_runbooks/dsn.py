"""Connection URLs (postgresql://user:password@host:port/database?options), read one way everywhere.

The database source connects with what split_url reads and the secret scan redacts what split_url reads,
so the two can never disagree about where a password ends. The userinfo ends at the LAST '@' before the
host, as urlsplit and browsers read it: a password with an unencoded '@' (p@ss-word) reaches the server
whole, and the scan knows the whole of it. (SQLAlchemy's make_url ends the password at the FIRST '@'.)

The host part starts after that '@' and ends at the first '/', '?' or '#', so a password with an unencoded
'/', '?' or '#' is not a URL for any parser: percent-encode it. Import-light on purpose (the redactor uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class ConnectionUrl:
    """The parts of a connection URL; user, password and database percent-decoded. Never prints its password."""

    scheme: str
    username: str | None
    password: str | None = field(repr=False)
    password_as_written: str | None = field(repr=False)   # exactly as spelled in the URL (maybe %-encoded)
    host: str | None
    port: int | None
    database: str | None
    query: dict[str, str | tuple[str, ...]]


def split_url(url: str) -> ConnectionUrl:
    """Split scheme://[user[:password]@]host[:port][/database][?query]; ValueError (never quoting it) if not a URL."""
    match = _SCHEME.match(url)
    if not match:
        raise ValueError("not a connection URL: expected scheme://[user[:password]@]host[:port]/database")
    rest = url[match.end():]
    end = _first(rest, "/?#")
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    username = password = raw_password = None
    if at:
        user, colon, raw = userinfo.partition(":")
        username = unquote(user)
        if colon:
            raw_password, password = raw, unquote(raw)
    host, port = _host_port(hostport)
    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    database = unquote(path[1:]) if path.startswith("/") and len(path) > 1 else None
    options: dict[str, str | tuple[str, ...]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        old = options.get(key)
        options[key] = value if old is None else (*((old,) if isinstance(old, str) else old), value)
    return ConnectionUrl(match.group(1), username, password, raw_password, host, port, database, options)


def _first(text: str, chars: str) -> int:
    found = [i for i in (text.find(c) for c in chars) if i >= 0]
    return min(found, default=len(text))


def _host_port(hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):                       # [IPv6]:port
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("connection URL: an IPv6 host needs its closing ']'")
        port = after[1:]
    else:
        host, _, port = hostport.partition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError("connection URL: the port is not a number")
    return (unquote(host) or None), (int(port) if port else None)
