"""The replication-slot-inactive fault: a logical replication slot whose consumer (an analytics sync) was switched
off without dropping it. The server keeps every WAL segment since the slot's restart_lsn (and its catalog_xmin
holds back vacuum of the catalogs) until it is consumed or dropped."""

from __future__ import annotations

from .base import Context

SLOT = "analytics_sync"
SEGMENTS = 4   # WAL segment switches after the slot was made: it retains the segments between, about 50 MB


class InactiveSlot:
    """A logical slot (pgoutput, as a subscriber's) created and never read, with WAL written after it."""

    def make(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [SLOT])
            for _ in range(SEGMENTS):
                # a record, then a switch to the next segment: each round leaves one more segment behind the slot
                conn.execute("SELECT pg_logical_emit_message(false, 'aias-sandbox', 'retained')")
                conn.execute("SELECT pg_switch_wal()")

    def reset(self, ctx: Context) -> None:
        with ctx.admin() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                         [SLOT])
