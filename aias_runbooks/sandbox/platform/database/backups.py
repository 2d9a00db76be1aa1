"""The sandbox's backups: a backup role, the scratch database verify restores into, and a fresh backup at `up`
(the backup-stale fault is faults/stale_backup.py).

`aias_backup` is the role database-backup dumps and restores with (the profile's backup_database_url): a superuser
here, because a dump reads Supabase Auth's tables (owned by supabase_auth_admin, under row level security) besides
the app's (owned by postgres), and a verify restore recreates objects of every owner. `aias_scratch` is an empty
database of the same server (scratch_database_url).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from ....settings import load_environment
from ....sources import backups

ROLE = "aias_backup"
SCRATCH = "aias_scratch"
FRESH_S = 3600            # a backup younger than this counts as fresh: `up` and a scenario switch take none then


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
