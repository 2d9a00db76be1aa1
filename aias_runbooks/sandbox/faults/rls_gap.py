"""The rls-gap fault: three tables appeared in public without the protection row level security gives the app's
users: one without RLS, one with RLS but no policy, and one whose only policy is the monitoring role's."""

from __future__ import annotations

from .base import SqlFault

RLS_GAP_SQL = """
CREATE TABLE public.debug_webhook_payloads (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz DEFAULT now(), payload jsonb);
CREATE TABLE public.feature_flags (key text PRIMARY KEY, enabled boolean NOT NULL DEFAULT false);
ALTER TABLE public.feature_flags ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.debug_webhook_payloads, public.feature_flags TO anon, authenticated;
-- A migration that copied the monitoring role's read policy and nothing else: the monitor reads every row, the
-- app's users (authenticated) none.
CREATE TABLE public.usage_reports (id bigint PRIMARY KEY, tenant_id uuid, summary text);
ALTER TABLE public.usage_reports ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.usage_reports TO authenticated, aias_monitor;
CREATE POLICY usage_reports_monitor_read ON public.usage_reports FOR SELECT TO aias_monitor USING (true);
"""
UNDO_SQL = "DROP TABLE IF EXISTS public.debug_webhook_payloads, public.feature_flags, public.usage_reports"

RLS_GAP = SqlFault(RLS_GAP_SQL, UNDO_SQL)
