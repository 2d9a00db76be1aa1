"""The console's users file (params/console_users.yaml, git-ignored; params/console_users.example.yaml shows it):

    users:
      - name: alice
        role: operator          # viewer | operator | approver
        token_sha256: <hex>     # sha256 of the token; a user without one comes in only via the trusted header

Only the token's sha256 is kept: `aias-runbooks console add-user NAME --role ROLE` prints the token once. The file
is read again when it changes, so a user added while serve runs can log in at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import paths
from ..errors import UsageError
from ..printable import show
from ..records import write_atomic

ROLES = ("viewer", "operator", "approver")       # each may do what the ones before it may
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Account:
    """One entry of the users file."""

    name: str
    role: str
    token_sha256: str | None


def default_path() -> Path:
    return paths.params_dir() / "console_users.yaml"


def token_hash(token: str) -> str:
    """The sha256 hex of a token, as the users file keeps it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load(path: Path) -> list[Account]:
    """Every user of the file ([] when it does not exist); UsageError naming the entry and what is valid on the
    first problem (a console with a half-read users file would lock people out or let the wrong one in)."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"console users file {path} cannot be read: {str(exc).splitlines()[0]}") from None
    entries = data.get("users") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f"console users file {path} must hold `users:`, a list of {{name, role, token_sha256}}")
    accounts, seen = [], set()
    for number, entry in enumerate(entries, 1):
        accounts.append(_account(entry, f"console users file {path}, user {number}"))
        if accounts[-1].name.lower() in seen:
            raise UsageError(f"console users file {path}, user {number}: {accounts[-1].name!r} is listed twice")
        seen.add(accounts[-1].name.lower())
    return accounts


def _account(entry: object, where: str) -> Account:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} must be a mapping {{name, role, token_sha256}}")
    name, role, digest = entry.get("name"), entry.get("role"), entry.get("token_sha256")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{where}: name {show(str(name))} is not a user name; valid: 1 to 64 letters, digits, "
                         "'.', '_', '@' or '-'")
    if role not in ROLES:
        raise UsageError(f"{where} ({name}): role {show(str(role))} is not a role; valid: {', '.join(ROLES)}")
    if digest is not None and not (isinstance(digest, str) and HEX.fullmatch(digest)):
        raise UsageError(f"{where} ({name}): token_sha256 must be 64 lowercase hex digits (the sha256 of the "
                         "token), or left out for a user who comes in via the trusted header")
    return Account(name, role, digest)


def add_user(path: Path, name: str, role: str) -> str:
    """Append a user with a new token to the file (created when missing) and return the token, the only time it is
    ever shown; UsageError for a bad name or role or a name already there."""
    if not NAME.fullmatch(name):
        raise UsageError(f"user name {show(name)} is not valid; valid: 1 to 64 letters, digits, '.', '_', '@' or '-'")
    if role not in ROLES:
        raise UsageError(f"--role {show(role)} is not a role; valid: {', '.join(ROLES)}")
    accounts = load(path)
    if any(a.name.lower() == name.lower() for a in accounts):
        raise UsageError(f"user {name!r} is already in {path}; remove the entry first to give a new token")
    token = secrets.token_urlsafe(32)
    entries = [{"name": a.name, "role": a.role, **({"token_sha256": a.token_sha256} if a.token_sha256 else {})}
               for a in accounts]
    entries.append({"name": name, "role": role, "token_sha256": token_hash(token)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "# console users (aias-runbooks console add-user): only each token's sha256 is kept\n"
                 + yaml.safe_dump({"users": entries}, sort_keys=False), mode=0o600)
    return token


class Users:
    """The users file as the console reads it: looked up by token or name, read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Account] = {}
        self._by_name: dict[str, Account] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the file again if it changed since last read (a bad edit keeps the last good users)."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return
        accounts = load(self.path) if stamp is not None else []
        self._stamp = stamp
        self._by_hash = {a.token_sha256: a for a in accounts if a.token_sha256}
        self._by_name = {a.name.lower(): a for a in accounts}

    def by_token(self, token: str) -> Account | None:
        """The user whose token this is (None for an unknown token)."""
        self._refresh_quietly()
        return self._by_hash.get(token_hash(token))

    def by_name(self, name: str) -> Account | None:
        """The user of this name, case-insensitively (the trusted header's user)."""
        self._refresh_quietly()
        return self._by_name.get(name.strip().lower())

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(UsageError):   # a half-written edit: the last good users stand until it is whole
            self.refresh()
