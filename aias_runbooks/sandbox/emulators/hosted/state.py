"""The hosted services' shared state: services.json in the sandbox folder, changed by scenarios and by the
services' own writes under a lock, re-read by the server when it changes; and what every service's handlers share
(credential checks, times)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web


def state_file(folder: Path) -> Path:
    return folder / "services.json"

@contextlib.contextmanager
def services_state(folder: Path) -> Iterator[dict[str, Any]]:
    """The services' state to read and change; written back atomically, under a lock, when the block ends."""
    path = state_file(folder)
    with (folder / "services.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {}
        yield state
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=1))
        os.replace(partial, path)

class State:
    """services.json, re-read when it changes."""

    def __init__(self, folder: Path) -> None:
        self.folder, self._mtime, self._data = folder, None, {}

    def get(self) -> dict[str, Any]:
        try:
            mtime = state_file(self.folder).stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            self._data, self._mtime = json.loads(state_file(self.folder).read_text()), mtime
        return self._data

def bearer(secret_var: str) -> Callable:
    def check(request: web.Request) -> None:
        expected = os.environ.get(secret_var, "")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not expected or not secrets.compare_digest(given, expected):
            raise web.HTTPUnauthorized(text=json.dumps({"error": {"code": "forbidden", "message": "Not authorized"}}),
                                       content_type="application/json")
    return check

def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
