"""The xid-age fault: an archive table nobody writes to, 60,000 transactions after it was last frozen, has reached
60 % of its autovacuum_freeze_max_age. A default server forces that freeze at 200 million transactions: the table's
own storage parameter is lowered to 100,000 (the least PostgreSQL takes) so the sandbox gets there in seconds, not
weeks, without a restart and without changing any other table."""

from __future__ import annotations

from .base import Context

TABLE = "public.events_archive_2024"
FREEZE_MAX_AGE = 100_000
BURN = 60_000   # transactions, each committed on its own: the table's age grows by one with each

CREATE_SQL = f"""
CREATE TABLE {TABLE} (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL)
    WITH (autovacuum_freeze_max_age = {FREEZE_MAX_AGE});
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_archive_2024_service ON {TABLE} TO service_role USING (true);
INSERT INTO {TABLE} SELECT g, 'signup', now() - g * interval '1 hour' FROM generate_series(1, 100) AS g;
"""
# A DO block may COMMIT when it is the whole statement outside a transaction block (the admin session autocommits)
BURN_SQL = f"DO $$ BEGIN FOR i IN 1..{BURN} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"


class XidAge:
    """The archive table made, then BURN transaction IDs consumed after it."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(CREATE_SQL)
            conn.execute(BURN_SQL)

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
