-- The Supabase platform a new project has before its first migration: roles, schemas, grants and the Auth (GoTrue) tables, as supabase/postgres and supabase/auth create them.

-- Run once by the bootstrap superuser, supabase_admin, as on Supabase, where a project's own `postgres` login is
-- not a superuser. Sources (read with the search tool, facts only):
--   supabase/postgres migrations/db/init-scripts/00000000000000-initial-schema.sql   API roles, authenticator,
--     extensions schema, default privileges, statement timeouts of anon and authenticated;
--   supabase/postgres migrations/db/init-scripts/00000000000001-auth-schema.sql      auth schema, supabase_auth_admin;
--   supabase/postgres migrations/db/init-scripts/00000000000003-post-setup.sql       search paths;
--   supabase/postgres migrations/db/migrations/10000000000000_demote-postgres.sql    postgres NOSUPERUSER CREATEDB
--     CREATEROLE LOGIN REPLICATION BYPASSRLS, ALL on auth and extensions (no grant option);
--   supabase/postgres .../20230529180330_alter_api_roles_for_inherit.sql             API roles INHERIT;
--   supabase/postgres .../20230713185014_add_supabase_superuser.sql                  pg_monitor and pg_signal_backend
--     reach postgres through supabase_superuser;
--   supabase/auth migrations (00_init_auth_schema through 20240427152123_add_one_time_tokens_table): the columns
--     below; 20240612123726_enable_rls_update_grants: RLS on every auth table, SELECT to postgres WITH GRANT OPTION.

-- Roles (cluster-wide: created only when missing).
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('postgres',                 'LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS INHERIT'),
      ('supabase_superuser',       'NOLOGIN'),
      ('anon',                     'NOLOGIN INHERIT'),
      ('authenticated',            'NOLOGIN INHERIT'),
      ('service_role',             'NOLOGIN INHERIT BYPASSRLS'),
      ('authenticator',            'LOGIN NOINHERIT'),
      ('supabase_auth_admin',      'LOGIN NOINHERIT CREATEROLE NOREPLICATION'),
      ('supabase_read_only_user',  'LOGIN BYPASSRLS'),
      -- The sandbox's application login (its API and workers). On Supabase an application that connects to Postgres
      -- directly uses postgres or service_role, both BYPASSRLS; a separate login with BYPASSRLS is something only a
      -- superuser can make on PostgreSQL 15, so the platform makes it here and the app's migrations grant it tables.
      ('aias_app',                 'NOLOGIN INHERIT BYPASSRLS')
    ) AS v(name, attributes)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I', r.name);
    END IF;
    EXECUTE format('ALTER ROLE %I %s', r.name, r.attributes);
  END LOOP;
END
$$;

GRANT pg_monitor, pg_signal_backend TO supabase_superuser;
GRANT supabase_superuser TO postgres;
-- PostgreSQL 16 and later: CREATEROLE no longer lets postgres grant roles it holds no ADMIN OPTION on. Supabase gives it
-- that on the API roles (20250605172253_grant_with_admin_to_postgres_16_and_above.sql); the sandbox also gives it on
-- the predefined roles a monitoring role needs (on a hosted project, where postgres lacks it, doctor names the missing
-- grant and the README says to ask support).
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 160000 THEN
    GRANT anon, authenticated, service_role TO postgres WITH ADMIN OPTION;
    GRANT pg_read_all_stats, pg_read_all_settings, pg_signal_backend TO postgres WITH ADMIN OPTION;
  END IF;
END
$$;
GRANT pg_read_all_data TO supabase_read_only_user;
GRANT anon, authenticated, service_role TO authenticator;
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
ALTER ROLE postgres SET search_path TO "$user", public, extensions;

-- The project's database: postgres creates the app's schemas and tables (Supabase CLI migrations run as postgres).
GRANT ALL ON DATABASE postgres TO postgres;
GRANT ALL ON SCHEMA public TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS extensions;
GRANT ALL ON SCHEMA extensions TO postgres;
GRANT USAGE ON SCHEMA extensions TO postgres WITH GRANT OPTION;   -- so postgres can let its own roles read them
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;

-- Supabase Auth (GoTrue): its schema, owned by supabase_auth_admin, with the columns its migrations leave.
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_admin;
GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO postgres, anon, authenticated, service_role;
ALTER ROLE supabase_auth_admin SET search_path = auth;

CREATE TYPE auth.aal_level AS ENUM ('aal1', 'aal2', 'aal3');

CREATE TABLE auth.instances (
  id              uuid NOT NULL PRIMARY KEY,
  uuid            uuid,
  raw_base_config text,
  created_at      timestamptz,
  updated_at      timestamptz
);

CREATE TABLE auth.schema_migrations (
  version varchar(255) NOT NULL PRIMARY KEY
);

CREATE TABLE auth.users (
  instance_id                 uuid,
  id                          uuid NOT NULL PRIMARY KEY DEFAULT gen_random_uuid(),
  aud                         varchar(255),
  role                        varchar(255),
  email                       varchar(255),
  encrypted_password          varchar(255),
  email_confirmed_at          timestamptz,
  invited_at                  timestamptz,
  confirmation_token          varchar(255),
  confirmation_sent_at        timestamptz,
  recovery_token              varchar(255),
  recovery_sent_at            timestamptz,
  email_change_token_new      varchar(255),
  email_change                varchar(255),
  email_change_sent_at        timestamptz,
  last_sign_in_at             timestamptz,
  raw_app_meta_data           jsonb,
  raw_user_meta_data          jsonb,
  is_super_admin              boolean,
  created_at                  timestamptz,
  updated_at                  timestamptz,
  phone                       text UNIQUE DEFAULT NULL,
  phone_confirmed_at          timestamptz,
  phone_change                text DEFAULT '',
  phone_change_token          varchar(255) DEFAULT '',
  phone_change_sent_at        timestamptz,
  confirmed_at                timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
  email_change_token_current  varchar(255) DEFAULT '',
  email_change_confirm_status smallint DEFAULT 0 CHECK (email_change_confirm_status >= 0
                                                        AND email_change_confirm_status <= 2),
  banned_until                timestamptz,
  reauthentication_token      varchar(255) DEFAULT '',
  reauthentication_sent_at    timestamptz,
  is_sso_user                 boolean NOT NULL DEFAULT false,
  deleted_at                  timestamptz,
  is_anonymous                boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false;
CREATE INDEX users_instance_id_idx ON auth.users (instance_id);
CREATE INDEX users_is_anonymous_idx ON auth.users (is_anonymous);
COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';

CREATE TABLE auth.identities (
  provider_id     text NOT NULL,
  user_id         uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  identity_data   jsonb NOT NULL,
  provider        text NOT NULL,
  last_sign_in_at timestamptz,
  created_at      timestamptz,
  updated_at      timestamptz,
  email           text GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
  id              uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider)
);
CREATE INDEX identities_user_id_idx ON auth.identities (user_id);
CREATE INDEX identities_email_idx ON auth.identities (email text_pattern_ops);

CREATE TABLE auth.sessions (
  id           uuid NOT NULL PRIMARY KEY,
  user_id      uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  created_at   timestamptz,
  updated_at   timestamptz,
  factor_id    uuid,
  aal          auth.aal_level,
  not_after    timestamptz,
  refreshed_at timestamp,
  user_agent   text,
  ip           inet,
  tag          text
);
CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id);
CREATE INDEX sessions_not_after_idx ON auth.sessions (not_after DESC);
CREATE INDEX user_id_created_at_idx ON auth.sessions (user_id, created_at);

CREATE TABLE auth.refresh_tokens (
  instance_id uuid,
  id          bigserial PRIMARY KEY,
  token       varchar(255) UNIQUE,
  user_id     varchar(255),
  revoked     boolean,
  created_at  timestamptz,
  updated_at  timestamptz,
  parent      varchar(255),
  session_id  uuid REFERENCES auth.sessions (id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_instance_id_user_id_idx ON auth.refresh_tokens (instance_id, user_id);
CREATE INDEX refresh_tokens_parent_idx ON auth.refresh_tokens (parent);
CREATE INDEX refresh_tokens_session_id_revoked_idx ON auth.refresh_tokens (session_id, revoked);
CREATE INDEX refresh_tokens_updated_at_idx ON auth.refresh_tokens (updated_at DESC);

-- GoTrue's audit trail: payload is JSON {"actor_id", "actor_username", "actor_via_sso", "action", "log_type",
-- "traits"} (internal/models/audit_log_entry.go); ip_address the client's.
CREATE TABLE auth.audit_log_entries (
  instance_id uuid,
  id          uuid NOT NULL PRIMARY KEY,
  payload     json,
  created_at  timestamptz,
  ip_address  varchar(64) NOT NULL DEFAULT ''
);
CREATE INDEX audit_logs_instance_id_idx ON auth.audit_log_entries (instance_id);

-- The JWT helpers PostgREST's requests set (request.jwt.claim.* older, request.jwt.claims newer).
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['instances', 'schema_migrations', 'users', 'identities', 'sessions', 'refresh_tokens',
                           'audit_log_entries']
  LOOP
    EXECUTE format('ALTER TABLE auth.%I OWNER TO supabase_auth_admin', t);
    EXECUTE format('ALTER TABLE auth.%I ENABLE ROW LEVEL SECURITY', t);
    -- demote-postgres: ALL for postgres, no grant option; enable_rls_update_grants: SELECT with grant option
    EXECUTE format('GRANT ALL ON auth.%I TO postgres', t);
    EXECUTE format('GRANT SELECT ON auth.%I TO postgres WITH GRANT OPTION', t);
  END LOOP;
END
$$;
REVOKE ALL ON auth.schema_migrations FROM postgres;
GRANT SELECT ON auth.schema_migrations TO postgres;
ALTER SEQUENCE auth.refresh_tokens_id_seq OWNER TO supabase_auth_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA auth TO postgres;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.email() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.email(), auth.jwt() TO anon, authenticated, service_role;

-- The sandbox API stands in for Supabase Auth (signup, login, sign-out everywhere): its login gets the writes GoTrue
-- (supabase_auth_admin) makes. No project role could grant them: on Supabase they are the platform's.
GRANT USAGE ON SCHEMA auth TO aias_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth.users, auth.identities, auth.sessions, auth.refresh_tokens TO aias_app;
GRANT SELECT, INSERT ON auth.audit_log_entries TO aias_app;
GRANT USAGE ON SEQUENCE auth.refresh_tokens_id_seq TO aias_app;
