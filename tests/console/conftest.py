"""The console's fixtures: `console` (the default server) and `start_console(...)` (one with other settings);
what they start is in server.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import Console, start


@pytest.fixture
def start_console(tmp_path) -> Iterator:
    """start_console(console_settings=None, archive=None) -> Console; every one started is stopped afterwards."""
    started: list[Console] = []

    def go(console_settings: dict[str, Any] | None = None, archive: Path | str | None = None) -> Console:
        started.append(start(tmp_path / f"console{len(started)}", console_settings, archive))
        return started[-1]
    yield go
    for console in started:
        console.stop()


@pytest.fixture
def console(start_console) -> Console:
    """The default console: users from a file, no trusted header, the archive in the output folder."""
    return start_console()
