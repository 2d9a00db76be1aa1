-- User support access: the monitor may switch to the authenticated role (to run a user's reads under RLS) without holding its privileges, reads tenant memberships and account state, and finds one user's requests and errors by index.

-- user-support runs a user's typical reads as that user, as Supabase's PostgREST does: in a READ ONLY transaction,
-- SET LOCAL ROLE authenticated and set_config('request.jwt.claims', ...). SET ROLE needs membership of authenticated;
-- a direct GRANT authenticated TO aias_monitor would also let the (INHERIT) monitor use authenticated's INSERT and
-- UPDATE grants in every session. So membership goes through a NOINHERIT bridge role: aias_monitor may SET ROLE
-- authenticated (membership is transitive) but inherits nothing from it (inheritance stops at a NOINHERIT role), on
-- PostgreSQL 13-15 and 16+ alike (on 16+ the bridge's grant defaults to INHERIT FALSE, SET TRUE).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor_as_user') THEN
    BEGIN
      CREATE ROLE aias_monitor_as_user NOLOGIN NOINHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  ALTER ROLE aias_monitor_as_user NOCREATEDB NOCREATEROLE NOINHERIT NOLOGIN;
END
$$;
GRANT authenticated TO aias_monitor_as_user;
GRANT aias_monitor_as_user TO aias_monitor;

-- user-support reads a user's memberships (and whether their account is confirmed or banned: 20250101001600).
GRANT SELECT ON public.tenant_members TO aias_monitor;
CREATE POLICY tenant_members_monitor_read ON public.tenant_members FOR SELECT TO aias_monitor USING (true);

-- One user's recent requests and errors (user-support), without reading every row of the window.
CREATE INDEX api_requests_user_id_created_at_idx ON public.api_requests (user_id, created_at)
  WHERE user_id IS NOT NULL;
CREATE INDEX error_logs_user_id_created_at_idx ON public.error_logs (user_id, created_at)
  WHERE user_id IS NOT NULL;
