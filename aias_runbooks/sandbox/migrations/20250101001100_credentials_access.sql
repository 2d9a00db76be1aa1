-- Credentials access: refresh tokens as Supabase keeps them, API-key and service-role use logged in api_requests, the admin revoke endpoint's writes, and the monitor's read of the access logs (never a token, key hash or password hash).

-- Supabase Auth's refresh tokens: one per session at login (the token itself is a secret).
CREATE TABLE auth.refresh_tokens (
  instance_id uuid,
  id          bigserial PRIMARY KEY,
  token       varchar(255) UNIQUE,
  user_id     varchar(255),
  revoked     boolean,
  created_at  timestamptz DEFAULT now(),
  updated_at  timestamptz DEFAULT now(),
  parent      varchar(255),
  session_id  uuid REFERENCES auth.sessions (id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_user_id_idx ON auth.refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session_id_idx ON auth.refresh_tokens (session_id);

-- Which credential a request presented: 'api_key' (then api_key_id) or 'service_role' (the admin token); NULL
-- for anonymous and session requests.
ALTER TABLE public.api_requests ADD COLUMN credential text, ADD COLUMN api_key_id uuid;

-- The API authenticates API keys (by prefix and hash), stamps last_used_at, and its admin endpoint
-- /api/admin/credentials/revoke (admin token) signs users out everywhere and revokes keys, in one transaction.
GRANT SELECT ON public.api_keys TO aias_app;
GRANT UPDATE (last_used_at, revoked_at) ON public.api_keys TO aias_app;
GRANT SELECT, INSERT, DELETE ON auth.refresh_tokens TO aias_app;
GRANT USAGE ON SEQUENCE auth.refresh_tokens_id_seq TO aias_app;
GRANT DELETE ON auth.sessions TO aias_app;

-- incident-data-breach reads the access logs: logins (audit log), who the users are, how many sessions and refresh
-- tokens they hold, and the API keys. Column grants: never a session id (the sandbox's bearer token), a refresh
-- token, a password hash or a key hash.
GRANT USAGE ON SCHEMA auth TO aias_monitor;
GRANT SELECT ON auth.audit_log_entries TO aias_monitor;
GRANT SELECT (id, email, created_at, last_sign_in_at) ON auth.users TO aias_monitor;
GRANT SELECT (user_id, created_at, not_after, user_agent, ip) ON auth.sessions TO aias_monitor;
GRANT SELECT (id, user_id, revoked, created_at) ON auth.refresh_tokens TO aias_monitor;
GRANT SELECT (id, tenant_id, name, created_at, last_used_at, revoked_at) ON public.api_keys TO aias_monitor;
CREATE POLICY api_keys_monitor_read ON public.api_keys FOR SELECT TO aias_monitor USING (true);
