"""The sandbox's backups: a backup role, the scratch database verify restores into, a fresh backup at `up`, and the
backup-stale scenario (the newest backup is three days old).

`aias_backup` is the role database-backup dumps and restores with (the profile's backup_database_url): a superuser
here, because a dump reads Supabase Auth's tables (owned by supabase_auth_admin, under row level security) besides
the app's (owned by postgres), and a verify restore recreates objects of every owner. `aias_scratch` is an empty
database of the same server (scratch_database_url).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from ....errors import SandboxError
from ....settings import load_environment
from ....sources import backups

ROLE = "aias_backup"
SCRATCH = "aias_scratch"
FRESH_S = 3600            # a backup younger than this counts as fresh: `up` and a scenario switch take none then
STALE_AGE = timedelta(days=3)
HELD = "backups-held"     # backup-stale moves the sandbox's fresh backups here (outside the backup folder)


def prepare(admin_dsn: str, password: str) -> dict[str, str]:
    """Create the backup role and the scratch database; the sandbox.env lines that name them."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(ROLE),
                                                                                  sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(SCRATCH), sql.Identifier(ROLE)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(     # verify may empty it (backups.SCRATCH_MARK)
            sql.Identifier(SCRATCH), sql.Literal(f"{backups.SCRATCH_MARK}: database-backup verify restores here")))
    base = admin_dsn.rsplit("@", 1)[1].split("/", 1)[0]
    return {"AIAS_SANDBOX_BACKUP_DATABASE_URL": f"postgresql://{ROLE}:{password}@{base}/postgres",
            "AIAS_SANDBOX_SCRATCH_DATABASE_URL": f"postgresql://{ROLE}:{password}@{base}/{SCRATCH}"}


def ensure_fresh(say: Callable[[str], None] = print) -> None:
    """Take a backup unless the newest one is younger than FRESH_S (healthy has a fresh backup)."""
    env = load_environment("sandbox")
    folder = backups.folder_of(env)
    newest = backups.metadata_of(folder) if folder else []
    if newest and (datetime.now(timezone.utc) - newest[0]["created"]).total_seconds() < FRESH_S:
        return
    made = backups.create(env, "aias-sandbox/backup")
    if made.problem or made.failed:   # said, not fatal: database-backup reports it (a sandbox from before backups)
        said = made.problem or made.failed
        hint = " (a sandbox started before backups: `sandbox down`, then `sandbox up`)" if made.problem else ""
        say(f"  no backup taken: {said}{hint}")
        return
    say(f"  backup {made.backup} taken [{made.seconds:.1f}s]")


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
