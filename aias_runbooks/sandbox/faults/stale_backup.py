"""The backup-stale fault: backups stopped three days ago, so the newest in the backup folder was taken then. The
sandbox's fresh backups are held aside (HELD, outside the backup folder) and come back when the scenario ends."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ...errors import SandboxError
from ...settings import load_environment
from ...sources import backups
from ..platform.database.backups import ensure_fresh
from .base import Context

STALE_AGE = timedelta(days=3)
HELD = "backups-held"     # backup-stale moves the sandbox's fresh backups here (outside the backup folder)


def make_stale(sandbox: Path) -> None:
    """Backups stopped three days ago: the fresh ones are held aside, the newest becomes one taken then."""
    env = load_environment("sandbox")
    folder = backups.folder_of(env)
    found = backups.metadata_of(folder)
    if not found:
        ensure_fresh(lambda _: None)
        found = backups.metadata_of(folder)
    if not any(m["complete"] for m in found):
        raise SandboxError("backup-stale needs a backup to age, and none could be taken: a sandbox started before "
                           "backups existed has no backup role; `aias-runbooks sandbox down`, then `sandbox up`")
    held = sandbox / HELD
    held.mkdir(exist_ok=True, mode=0o700)
    then = datetime.now(timezone.utc) - STALE_AGE
    source = next(m for m in found if m["complete"])
    for meta in found:
        for path in (meta["path"], meta["path"].with_suffix(".json")):
            if path.exists():
                shutil.move(path, held / path.name)
    name = f"{env.name}-{then:%Y%m%d-%H%M%S}Z-0000"
    shutil.copyfile(held / source["path"].name, folder / f"{name}.dump")
    meta = {k: v for k, v in source.items() if k not in ("path", "complete", "created")}
    meta |= {"file": f"{name}.dump", "created_at": then.isoformat(timespec="seconds"), "sandbox": "backup-stale"}
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1))
    for path in (folder / f"{name}.dump", folder / f"{name}.json"):
        path.chmod(0o600)
        os.utime(path, (then.timestamp(), then.timestamp()))


def reset(sandbox: Path) -> None:
    """Leaving backup-stale: the aged backup goes, the held ones come back (a fresh one is taken if needed)."""
    folder = backups.folder_of(load_environment("sandbox"))
    for meta in backups.metadata_of(folder):
        if meta.get("sandbox") == "backup-stale":
            meta["path"].unlink(missing_ok=True)
            meta["path"].with_suffix(".json").unlink(missing_ok=True)
    held = sandbox / HELD
    for path in held.glob("*") if held.is_dir() else []:
        shutil.move(path, folder / path.name)


class StaleBackup:
    """The newest backup three days old (make_stale); reset brings the held ones back."""

    def make(self, ctx: Context) -> None:
        make_stale(ctx.folder)

    def reset(self, ctx: Context) -> None:
        reset(ctx.folder)
