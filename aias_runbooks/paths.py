"""Where the project's files live: notebooks, params, output and sandbox state."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Report folders hold other sessions' queries and client addresses: owner and group only (the umask may narrow it).
REPORT_MODE = 0o750


def project_root() -> Path:
    """The checkout holding notebooks/ and params/ (AIAS_HOME overrides)."""
    if home := os.environ.get("AIAS_HOME"):
        return Path(home).resolve()
    return PACKAGE_DIR.parent


def notebooks_dir() -> Path:
    return Path(os.environ.get("AIAS_NOTEBOOKS_DIR") or project_root() / "notebooks")


def params_dir() -> Path:
    return project_root() / "params"


def output_dir() -> Path:
    return Path(os.environ.get("AIAS_OUTPUT_DIR") or project_root() / "output")


def sandbox_dir() -> Path:
    """The git-ignored folder holding the sandbox's state, data and logs."""
    return Path(os.environ.get("AIAS_SANDBOX_DIR") or project_root() / ".sandbox")


def sql_dir() -> Path:
    return PACKAGE_DIR / "sql"
