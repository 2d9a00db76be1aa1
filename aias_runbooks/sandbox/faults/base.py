"""What every fault is given and what it must do: `make(ctx)` injects it into the running sandbox, `reset(ctx)`
undoes it (after a failed or partial make too), both given one Context.

A scenario (scenarios.py) is a list of faults; `control.apply_scenario` resets the previous scenario's and makes
the new one's. A fault may use the platform's and the emulators' helpers, never control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from .. import processes
from ..platform.database.postgres import admin_connection


@dataclass
class Context:
    """The running sandbox as a fault sees it: state.json's content (components, ports, scale, when the scenario
    began), a way to save it, and say() for a line to the operator."""

    state: dict[str, Any]
    save: Callable[[], None]
    say: Callable[[str], None]

    @property
    def folder(self) -> Path:
        return Path(self.state["folder"])

    @property
    def env(self) -> dict[str, str]:
        """sandbox.env: the sandbox's URLs and generated secrets."""
        return processes.sandbox_env(self.folder)

    @property
    def since(self) -> float:
        """When the current scenario began (epoch s); 0 before the first."""
        return self.state.get("scenario_since", 0)

    @property
    def scale(self) -> str:
        return self.state.get("scale", "default")

    def admin(self) -> psycopg.Connection:
        """A superuser connection (autocommit), retried briefly while a stopped helper's slots free up."""
        return admin_connection(self.folder)

    def stop(self, component: str) -> None:
        """Stop one of the platform's processes (api, worker) for the scenario; control starts it again after."""
        processes.stop(self.state["components"].pop(component, None))
        self.save()


class Fault(Protocol):
    """One thing wrong with the platform, made real. A fault that changes how the sandbox API answers also has
    `switches` ({"api": mode} or {"webhook": mode}): control writes them to scenario.json before the API starts."""

    def make(self, ctx: Context) -> None: ...

    def reset(self, ctx: Context) -> None: ...


def remove_users(conn: psycopg.Connection, users: list[str]) -> None:
    """Delete users a fault signed up, with what Supabase Auth keeps of them outside the user row (audit entries,
    refresh tokens); sessions, identities and the app's rows go with the user (ON DELETE CASCADE)."""
    conn.execute("DELETE FROM auth.audit_log_entries WHERE payload ->> 'actor_id' = ANY(%s)", [users])
    conn.execute("DELETE FROM auth.refresh_tokens WHERE user_id = ANY(%s)", [users])
    conn.execute("DELETE FROM auth.users WHERE id = ANY(%s::uuid[])", [users])


@dataclass(frozen=True)
class SqlFault:
    """A fault that is one change to the database: `setup` run as the superuser to make it, `undo` to reset it
    (idempotent: it runs after a partial make too)."""

    setup: str
    undo: str

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(self.setup)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(self.undo)
