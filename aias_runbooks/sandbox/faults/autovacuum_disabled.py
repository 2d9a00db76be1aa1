"""The autovacuum-disabled fault: a bulk-import table had autovacuum turned off for a load and never turned back
on: its dead rows are far past the trigger point."""

from __future__ import annotations

from ..platform.database.stats import FLUSH_STATS_SQL
from .base import SqlFault

# A table loaded with autovacuum off (a common bulk-load trick) and never switched back: 3000 dead rows against
# a trigger point of 50 + 0.2 x 1000 = 250. The statistics are flushed before the session ends, so they show at once.
AUTOVACUUM_DISABLED_SQL = """
CREATE TABLE public.import_staging (id bigint PRIMARY KEY, payload text, imported boolean NOT NULL DEFAULT false)
    WITH (autovacuum_enabled = false);
ALTER TABLE public.import_staging ENABLE ROW LEVEL SECURITY;
CREATE POLICY import_staging_service ON public.import_staging TO service_role USING (true);
INSERT INTO public.import_staging (id, payload) SELECT g, md5(g::text) FROM generate_series(1, 1000) AS g;
ANALYZE public.import_staging;
UPDATE public.import_staging SET imported = true;
UPDATE public.import_staging SET payload = payload || '.';
UPDATE public.import_staging SET imported = false;
""" + FLUSH_STATS_SQL + ";"
UNDO_SQL = "DROP TABLE IF EXISTS public.import_staging"

AUTOVACUUM_DISABLED = SqlFault(AUTOVACUUM_DISABLED_SQL, UNDO_SQL)
