"""The sandbox's local migrations folder (the migration-drift fault is faults/migration_drift.py).

The sandbox profile's `migrations.folder` is `<sandbox dir>/migrations`: a copy of the migrations `sandbox up`
applies (aias_runbooks/sandbox/migrations), made again at every scenario switch, so it is the "repository" the
migrations runbook compares with the database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .schema import MIGRATIONS

FOLDER = "migrations"
def folder_of(sandbox: Path) -> Path:
    return sandbox / FOLDER


def sync(sandbox: Path) -> Path:
    """The sandbox's migrations folder holds exactly the migrations `sandbox up` applies (a scenario's extra file
    goes, an edited copy is replaced); returns the folder."""
    folder = folder_of(sandbox)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in MIGRATIONS.glob("*.sql")}
    for path in folder.iterdir():
        if path.is_file() and path.name not in wanted:
            path.unlink()
    for name, source in wanted.items():
        target = folder / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
    return folder
