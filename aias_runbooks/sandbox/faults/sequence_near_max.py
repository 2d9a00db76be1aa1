"""The sequence-near-max fault: invoice numbers of an old billing import live in an integer column fed by a bigint
sequence (CREATE SEQUENCE's default type), now at 2,000,000,000: 93 % of what the column holds (2^31-1). The
sequence itself could count on for 9.2 x 10^18; the column fails first, with 'integer out of range'."""

from __future__ import annotations

from ..platform.database.stats import FLUSH_STATS_SQL
from .base import SqlFault

# The monitoring role is granted SELECT on the sequence, as the runbook's UNKNOWN finding asks a production setup
# to grant it: it reads the value and cannot change it.
SEQUENCE_NEAR_MAX_SQL = """
CREATE SEQUENCE public.invoice_imports_id_seq;
CREATE TABLE public.invoice_imports (
    id           integer PRIMARY KEY DEFAULT nextval('public.invoice_imports_id_seq'),
    amount_cents integer NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now());
ALTER SEQUENCE public.invoice_imports_id_seq OWNED BY public.invoice_imports.id;
ALTER TABLE public.invoice_imports ENABLE ROW LEVEL SECURITY;
CREATE POLICY invoice_imports_service ON public.invoice_imports TO service_role USING (true);
GRANT SELECT ON SEQUENCE public.invoice_imports_id_seq TO aias_monitor;
SELECT setval('public.invoice_imports_id_seq', 2000000000);
INSERT INTO public.invoice_imports (amount_cents) SELECT 100 * g FROM generate_series(1, 3) AS g;
""" + FLUSH_STATS_SQL + ";"
UNDO_SQL = "DROP TABLE IF EXISTS public.invoice_imports; DROP SEQUENCE IF EXISTS public.invoice_imports_id_seq"

SEQUENCE_NEAR_MAX = SqlFault(SEQUENCE_NEAR_MAX_SQL, UNDO_SQL)
