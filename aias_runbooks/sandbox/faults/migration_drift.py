"""The migration-drift fault: both kinds of drift made real between the sandbox's migrations folder (its
"repository", platform/database/migrations_folder.py) and the database's migration history:
- a hotfix someone ran from the Supabase dashboard's SQL editor and recorded in supabase_migrations.schema_migrations
  (its index really exists) while no file for it was ever committed;
- a migration committed to the repository (a file in the folder) that was never applied.
Leaving it removes both, and whatever an apply of the pending file created.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from ..platform.database.migrations_folder import folder_of, sync
from .base import Context

HOTFIX_VERSION = "20250115093000"
HOTFIX_NAME = "hotfix_stripe_events_type_index"
HOTFIX_SQL = "CREATE INDEX IF NOT EXISTS stripe_events_type_idx ON public.stripe_events (type)"
PENDING_VERSION = "20250201000000"
PENDING_NAME = "workflow_tags"
PENDING_SQL = """-- Workflow tags: free-form labels a tenant puts on its workflows (the dashboard filters by them).

CREATE TABLE public.workflow_tags (
  workflow_id uuid NOT NULL REFERENCES public.workflows (id) ON DELETE CASCADE,
  tag         text NOT NULL CHECK (length(tag) BETWEEN 1 AND 40),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, tag)
);
CREATE INDEX workflow_tags_tag_idx ON public.workflow_tags (tag);

ALTER TABLE public.workflow_tags ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, DELETE ON public.workflow_tags TO authenticated;
CREATE POLICY workflow_tags_member ON public.workflow_tags FOR ALL TO authenticated
  USING (workflow_id IN (SELECT w.id FROM public.workflows w WHERE w.tenant_id IN (SELECT private.user_tenant_ids())))
  WITH CHECK (workflow_id IN (SELECT w.id FROM public.workflows w
                              WHERE w.tenant_id IN (SELECT private.user_tenant_ids())));
"""
RESET_SQL = f"""
DROP TABLE IF EXISTS public.workflow_tags;
DROP INDEX IF EXISTS public.stripe_events_type_idx;
DELETE FROM supabase_migrations.schema_migrations WHERE version IN ('{HOTFIX_VERSION}', '{PENDING_VERSION}');
"""


def reset(conn: psycopg.Connection) -> None:
    """Leaving migration-drift (or an apply of its pending file): the hotfix, its row and the table are gone."""
    conn.execute(RESET_SQL)


def make_drift(sandbox: Path, conn: psycopg.Connection) -> None:
    """A dashboard hotfix recorded without a file, and a committed migration never applied."""
    with conn.transaction():
        conn.execute(HOTFIX_SQL)
        conn.execute("INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
                     "VALUES (%s, %s, %s)", (HOTFIX_VERSION, HOTFIX_NAME, [HOTFIX_SQL]))
    (folder_of(sandbox) / f"{PENDING_VERSION}_{PENDING_NAME}.sql").write_text(PENDING_SQL)


class MigrationDrift:
    """A dashboard hotfix without a file and a file never applied (make_drift); reset removes both."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            make_drift(ctx.folder, conn)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            reset(conn)
        sync(ctx.folder)
