-- The monitor reads Supabase Auth's tables through views of exactly the columns the runbooks need: the auth tables have row level security (GoTrue enables it) with no policy a project may add.

-- Supabase Auth enables RLS on every auth table and owns them (supabase_auth_admin), so no project role can add a
-- policy; postgres holds SELECT on them WITH GRANT OPTION, but a role it grants SELECT to sees zero rows. A view
-- reads as its owner: these belong to postgres, which has BYPASSRLS, so the monitor sees every row, of these
-- columns only (never a password hash, a token or a session id), and nothing it could write through (SELECT only).
-- The schema aias_runbooks is not exposed through the Data API (PostgREST serves public).
CREATE VIEW aias_runbooks.auth_users AS
  SELECT id, email, created_at, last_sign_in_at, email_confirmed_at, banned_until FROM auth.users;
CREATE VIEW aias_runbooks.auth_sessions AS
  SELECT user_id, created_at, not_after, user_agent, ip FROM auth.sessions;
CREATE VIEW aias_runbooks.auth_refresh_tokens AS
  SELECT id, user_id, revoked, created_at FROM auth.refresh_tokens;
CREATE VIEW aias_runbooks.auth_audit_log_entries AS
  SELECT instance_id, id, payload, created_at, ip_address FROM auth.audit_log_entries;

REVOKE ALL ON aias_runbooks.auth_users, aias_runbooks.auth_sessions, aias_runbooks.auth_refresh_tokens,
  aias_runbooks.auth_audit_log_entries FROM PUBLIC;
GRANT SELECT ON aias_runbooks.auth_users, aias_runbooks.auth_sessions, aias_runbooks.auth_refresh_tokens,
  aias_runbooks.auth_audit_log_entries TO aias_monitor;
