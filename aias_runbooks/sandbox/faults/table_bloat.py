"""The table-bloat fault: a usage-metering table whose old samples were purged (80 % of its rows deleted) with
autovacuum switched off on it, then analyzed: its live rows need a fifth of the pages it holds, and its primary key
keeps an entry for every row it ever had. Every column is fixed-width, so the estimate needs no statistics that row
level security hides from the monitoring role (its widths come from the column types)."""

from __future__ import annotations

from ..platform.database.stats import FLUSH_STATS_SQL
from .base import SqlFault

TABLE = "public.usage_samples"
ROWS = 1_500_000   # about 100 MB of heap and 32 MB of primary key: past the wasted-MB lines once 80 % is gone

TABLE_BLOAT_SQL = f"""
CREATE TABLE {TABLE} (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, sampled_at timestamptz NOT NULL,
                      value double precision NOT NULL)
    WITH (autovacuum_enabled = false);
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY usage_samples_service ON {TABLE} TO service_role USING (true);
INSERT INTO {TABLE}
SELECT g, ('00000000-0000-0000-0000-' || lpad((g % 40)::text, 12, '0'))::uuid,
       now() - g * interval '1 second', g % 1000
FROM generate_series(1, {ROWS}) AS g;
DELETE FROM {TABLE} WHERE id % 5 <> 0;
ANALYZE {TABLE};
""" + FLUSH_STATS_SQL + ";"
UNDO_SQL = f"DROP TABLE IF EXISTS {TABLE}"

TABLE_BLOAT = SqlFault(TABLE_BLOAT_SQL, UNDO_SQL)
