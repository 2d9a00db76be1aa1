-- The application role aias_app the platform's API and workers connect as (not a superuser, as on Supabase): BYPASSRLS like service_role, and the table privileges they use.

-- The role itself (BYPASSRLS, NOLOGIN) is the platform's: on PostgreSQL 15 only a superuser may give BYPASSRLS,
-- which Supabase's `postgres` is not (sandbox/platform.sql makes it). BYPASSRLS rather than membership of
-- service_role: service_role is NOINHERIT (a member gets its privileges only after SET ROLE), and the application
-- reads and writes every tenant's rows, as a service_role client does. Not a superuser: a monitoring role with
-- pg_signal_backend can end its sessions (a leaked transaction, a lock holder), which it could not do to a
-- superuser's. `aias-runbooks sandbox up` sets LOGIN PASSWORD, so no password is written in a migration.
-- (USAGE on public: PUBLIC has it, as on every Supabase project.)

-- What the sandbox API and its workloads do: the API logs every request (api_requests) and /api/healthz
-- runs SELECT 1; the everyday traffic reads profiles, tenants, workflows, executions and subscriptions;
-- the billing job updates workflows.  A new endpoint that writes elsewhere adds its grant in a new migration.
GRANT SELECT ON public.profiles, public.tenants, public.workflows, public.workflow_executions,
  public.subscription_tiers
TO aias_app;
GRANT UPDATE ON public.workflows TO aias_app;
GRANT INSERT ON public.api_requests TO aias_app;
