"""The sandbox's local migrations folder and the migration-drift scenario.

The sandbox profile's `migrations.folder` is `<sandbox dir>/migrations`: a copy of the migrations `sandbox up`
applies (aias_runbooks/sandbox/migrations), made again at every scenario switch, so it is the "repository" the
migrations runbook compares with the database. Scenario migration-drift makes both kinds of drift real:
- a hotfix someone ran from the Supabase dashboard's SQL editor and recorded in supabase_migrations.schema_migrations
  (its index really exists) while no file for it was ever committed;
- a migration committed to the repository (a file in the copy) that was never applied.
Leaving the scenario removes both, and whatever an apply of the pending file created.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from .schema import MIGRATIONS

FOLDER = "migrations"
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
