-- Credentials access: refresh tokens as Supabase keeps them, API-key and service-role use logged in api_requests, the admin revoke endpoint's writes, and the monitor's read of the access logs (never a token, key hash or password hash).

-- Which credential a request presented: 'api_key' (then api_key_id) or 'service_role' (the admin token); NULL
-- for anonymous and session requests.
ALTER TABLE public.api_requests ADD COLUMN credential text, ADD COLUMN api_key_id uuid;

-- The API authenticates API keys (by prefix and hash), stamps last_used_at, and its admin endpoint
-- /api/admin/credentials/revoke (admin token) signs users out everywhere and revokes keys, in one transaction.
GRANT SELECT ON public.api_keys TO aias_app;
GRANT UPDATE (last_used_at, revoked_at) ON public.api_keys TO aias_app;
-- (signing users out deletes Supabase Auth's sessions and refresh tokens: those grants are the platform's.)

-- incident-data-breach reads the access logs: logins (audit log), who the users are, how many sessions and refresh
-- tokens they hold (through aias_runbooks' views of auth: 20250101001600), and the API keys. Column grants: never
-- a key hash.
GRANT SELECT (id, tenant_id, name, created_at, last_used_at, revoked_at) ON public.api_keys TO aias_monitor;
CREATE POLICY api_keys_monitor_read ON public.api_keys FOR SELECT TO aias_monitor USING (true);
