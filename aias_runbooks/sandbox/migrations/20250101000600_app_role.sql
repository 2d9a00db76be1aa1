-- The application role aias_app the platform's API and workers connect as (not a superuser, as on Supabase): BYPASSRLS like service_role, and the table privileges they use.

-- Created only when missing (roles are cluster-wide), then its attributes are pinned.  NOLOGIN here:
-- `aias-runbooks sandbox up` sets LOGIN PASSWORD, so no password is written in a migration.
-- BYPASSRLS rather than membership of service_role: service_role is NOINHERIT (a member gets its
-- privileges only after SET ROLE), and the application reads and writes every tenant's rows, as a
-- service_role client does.  Not a superuser: a monitoring role with pg_signal_backend can end its
-- sessions (a leaked transaction, a lock holder), which it could not do to a superuser's.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aias_app') THEN
    BEGIN
      CREATE ROLE aias_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  ALTER ROLE aias_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS INHERIT;
END
$$;

DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO aias_app', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO aias_app;

-- What the sandbox API and its workloads do: the API logs every request (api_requests) and /api/healthz
-- runs SELECT 1; the everyday traffic reads profiles, tenants, workflows, executions and subscriptions;
-- the billing job updates workflows.  A new endpoint that writes elsewhere adds its grant in a new migration.
GRANT SELECT ON public.profiles, public.tenants, public.workflows, public.workflow_executions,
  public.subscription_tiers
TO aias_app;
GRANT UPDATE ON public.workflows TO aias_app;
GRANT INSERT ON public.api_requests TO aias_app;
