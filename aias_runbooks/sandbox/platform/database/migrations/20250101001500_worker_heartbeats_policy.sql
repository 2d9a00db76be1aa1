-- worker_heartbeats gets the service_role policy every other infrastructure table has: its only policy was the monitoring role's read, which serves none of the app's roles.

-- service_role bypasses RLS, so this changes no access; it states the intent as on api_requests, error_logs,
-- stripe_events and rate_limits, and keeps database-health's RLS lint (a policy for a role the app uses) quiet.
CREATE POLICY worker_heartbeats_service_role ON public.worker_heartbeats FOR ALL TO service_role
  USING (true) WITH CHECK (true);
