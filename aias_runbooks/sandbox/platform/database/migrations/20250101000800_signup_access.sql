-- Signup access: /api/auth/signup creates users, counts its rate-limit windows and logs email failures; the monitor reads rate_limits.

-- The API creates the account (auth.users, its profile and a free plan), counts per-minute windows in rate_limits,
-- and writes error_logs when the welcome email cannot be sent. /api/admin/rate-limits/clear (admin token) ends a
-- key's block.
-- (auth.users and its identity are Supabase Auth's to write: the sandbox API's grants there are the platform's.)
GRANT INSERT ON public.profiles, public.subscription_tiers, public.error_logs TO aias_app;
GRANT SELECT, INSERT, UPDATE ON public.rate_limits TO aias_app;

-- signup-failures reads the rate-limit windows (which keys are blocked, until when).
GRANT SELECT ON public.rate_limits TO aias_monitor;
CREATE POLICY rate_limits_monitor_read ON public.rate_limits FOR SELECT TO aias_monitor USING (true);
