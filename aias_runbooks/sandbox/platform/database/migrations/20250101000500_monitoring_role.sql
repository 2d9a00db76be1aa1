-- The monitoring role aias_monitor the runbooks diagnose through: no superuser, statistics/settings/signal roles, read-only on exactly the tables the runbook queries read.

-- Run as the project's `postgres` role, which on Supabase is not a superuser (CREATEROLE, no grant of SUPERUSER,
-- REPLICATION or BYPASSRLS): everything here is what it may do. Roles are cluster-wide and the cluster may be reused,
-- so the role is created only when missing; one that exists with an attribute postgres cannot take away (superuser,
-- replication, bypassrls) stops the migration rather than leaving a monitoring login that can bypass its limits.
-- It is created NOLOGIN: `aias-runbooks sandbox up` (or the operator, in production) sets LOGIN PASSWORD, so no
-- password is ever written in a migration. INHERIT, so the predefined roles below take effect without SET ROLE.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor') THEN
    BEGIN
      CREATE ROLE aias_monitor NOLOGIN INHERIT;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor'
             AND (rolsuper OR rolreplication OR rolbypassrls)) THEN
    RAISE EXCEPTION 'role aias_monitor exists with SUPERUSER, REPLICATION or BYPASSRLS: drop it or remove those first';
  END IF;
  ALTER ROLE aias_monitor NOCREATEDB NOCREATEROLE INHERIT;
END
$$;

-- pg_read_all_stats:    every session's query, state and wait in pg_stat_activity, every pg_stat_statements text.
-- pg_read_all_settings: superuser-only settings (pg_stat_statements_status reads shared_preload_libraries).
-- pg_signal_backend:    only for the guarded action (terminate leaked sessions); it cannot signal superusers.
-- (postgres's CREATEROLE lets it grant these on PostgreSQL 15; on 16 and later it needs ADMIN OPTION on them.)
GRANT pg_read_all_stats, pg_read_all_settings, pg_signal_backend TO aias_monitor;

-- CONNECT: PUBLIC has it on a Supabase project's database (owned by supabase_admin, not postgres).

-- The schemas the queries in aias_runbooks/sql/ read: the playbook's tables (public), pg_stat_statements
-- (extensions, where Supabase installs it; its view is readable by PUBLIC) and the migration history.
-- (public: USAGE is PUBLIC's; extensions: postgres holds USAGE with grant option, as Supabase grants it.)
GRANT USAGE ON SCHEMA extensions, supabase_migrations TO aias_monitor;

-- SELECT on exactly the tables those queries read, nothing else (no INSERT, UPDATE, DELETE or TRUNCATE anywhere).
GRANT SELECT ON public.profiles, public.subscription_tiers, public.workflows, public.error_logs,
  supabase_migrations.schema_migrations
TO aias_monitor;

-- Those public tables have row level security: without a policy the monitor would count zero rows.  The
-- playbook's Common Database Queries (active users, subscription tiers, workflow usage, error logs) need
-- every row, read-only.
CREATE POLICY profiles_monitor_read ON public.profiles FOR SELECT TO aias_monitor USING (true);
CREATE POLICY subscription_tiers_monitor_read ON public.subscription_tiers FOR SELECT TO aias_monitor USING (true);
CREATE POLICY workflows_monitor_read ON public.workflows FOR SELECT TO aias_monitor USING (true);
CREATE POLICY error_logs_monitor_read ON public.error_logs FOR SELECT TO aias_monitor USING (true);
