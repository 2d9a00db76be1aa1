"""The sandbox API's own faults: `slow` (a quarter of requests wait 1.2 s), `db-down` (its database check hangs:
/api/healthz waits its 2 s timeout and answers 503), `down` (the process is stopped: connections are refused).

The API reads its mode from scenario.json (platform/api/app.py), which control writes from the scenario's faults'
`switches` (`normal` unless one says otherwise) and starts the API again before each scenario: reset has nothing
left to undo.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Context

MODES = ("slow", "db-down", "down")


@dataclass(frozen=True)
class ApiMode:
    mode: str

    @property
    def switches(self) -> dict[str, str]:
        return {"api": self.mode}

    def make(self, ctx: Context) -> None:
        if self.mode == "down":
            ctx.stop("api")

    def reset(self, ctx: Context) -> None:
        pass
