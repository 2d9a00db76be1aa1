"""Where the project's files live: notebooks, params, output and sandbox state."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
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


def archive() -> str:
    """The archive a runbook reads (trends, the maintenance window's incidents): AIAS_ARCHIVE (the runner sets it to
    the run's --archive, a folder or s3://bucket/prefix), else the report root."""
    return os.environ.get("AIAS_ARCHIVE") or str(output_dir())


def sandbox_dir() -> Path:
    """The git-ignored folder holding the sandbox's state, data and logs."""
    return Path(os.environ.get("AIAS_SANDBOX_DIR") or project_root() / ".sandbox")


def sql_dir() -> Path:
    return PACKAGE_DIR / "sql"


def postgres_bindirs() -> list[tuple[str, str]]:
    """PostgreSQL binary folders as (folder, where it comes from), in the order they are tried: the sandbox's server
    and database-backup's pg_dump and pg_restore are looked for here."""
    candidates: list[tuple[str, str]] = []
    if env := os.environ.get("AIAS_PG_BINDIR"):
        candidates.append((env, "AIAS_PG_BINDIR"))
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append((out.stdout.strip(), "this machine"))
    for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        candidates.append((path, "this machine"))
    if spec := importlib.util.find_spec("pgserver"):
        candidates.append((str(Path(spec.origin).parent / "pginstall" / "bin"), "pgserver wheel"))
    return candidates


def _major(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0
