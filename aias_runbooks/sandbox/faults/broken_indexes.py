"""The broken-indexes fault: a migration tried to make workflow names unique with CREATE UNIQUE INDEX CONCURRENTLY
and failed on the duplicates, leaving the invalid index public.workflows_name_key behind; another migration added
public.api_keys_tenant_idx, the same index as the existing api_keys_tenant_id_idx."""

from __future__ import annotations

import psycopg

from .base import Context

INVALID = "public.workflows_name_key"
DUPLICATE = "public.api_keys_tenant_idx"


class BrokenIndexes:
    """An invalid index (a failed concurrent unique build) and a duplicate index, on two tables of the app."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(f"CREATE INDEX {DUPLICATE.split('.')[1]} ON public.api_keys (tenant_id)")
            try:   # each statement on its own: CONCURRENTLY cannot run inside a transaction block
                conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {INVALID.split('.')[1]} ON public.workflows (name)")
            except psycopg.errors.UniqueViolation:
                pass   # the failure is the fault: the index stays, invalid
            else:
                raise RuntimeError("workflow names are unique: the concurrent unique build did not fail")

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(f"DROP INDEX IF EXISTS {INVALID}, {DUPLICATE}")
