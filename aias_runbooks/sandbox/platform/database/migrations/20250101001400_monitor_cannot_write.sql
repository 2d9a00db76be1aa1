-- The monitoring role cannot write by any path: no way to become authenticated (user-support reads as a user through one read-only function instead), and read-only as a role setting.

-- Until now aias_monitor could SET ROLE authenticated (through the NOINHERIT bridge aias_monitor_as_user): with a
-- forged request.jwt.claims in a READ WRITE transaction it wrote as any user (profiles, tenant members, API keys).
-- A read-only session was only a client option. Both paths end here.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor_as_user') THEN
    REVOKE aias_monitor_as_user FROM aias_monitor;
    REVOKE authenticated FROM aias_monitor_as_user;
    DROP ROLE aias_monitor_as_user;
  END IF;
END
$$;

-- A session of the monitor starts read-only whatever its client asks for (a second layer: it holds no write
-- privilege anywhere, so turning this off gains nothing).
ALTER ROLE aias_monitor SET default_transaction_read_only = on;

-- user-support's data-access test: the app's reads for one user, as the monitor sees them (every row) and as the
-- user sees them under row level security. The reads live once, here, in a schema of this tool's own.
CREATE SCHEMA IF NOT EXISTS aias_runbooks;
REVOKE ALL ON SCHEMA aias_runbooks FROM PUBLIC;
GRANT USAGE ON SCHEMA aias_runbooks TO aias_monitor, authenticated;

-- Rows per read as the calling role may see them (SECURITY INVOKER: the caller's privileges and policies).
CREATE FUNCTION aias_runbooks.user_reads(user_id uuid, tenant_ids uuid[], since timestamptz)
RETURNS TABLE ("table" text, "read" text, "rows" bigint)
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = '' AS $$
  SELECT 'profiles', 'their profile',
         (SELECT count(*) FROM public.profiles WHERE id = user_reads.user_id)
  UNION ALL
  SELECT 'tenant_members', 'their memberships',
         (SELECT count(*) FROM public.tenant_members WHERE tenant_members.user_id = user_reads.user_id)
  UNION ALL
  SELECT 'tenants', 'their tenants',
         (SELECT count(*) FROM public.tenants WHERE id = ANY(user_reads.tenant_ids))
  UNION ALL
  SELECT 'workflows', 'their tenants'' workflows',
         (SELECT count(*) FROM public.workflows WHERE tenant_id = ANY(user_reads.tenant_ids))
  UNION ALL
  SELECT 'workflow_executions', 'their tenants'' executions since '
           || to_char(user_reads.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
         (SELECT count(*) FROM public.workflow_executions
          WHERE tenant_id = ANY(user_reads.tenant_ids) AND created_at >= user_reads.since)
  UNION ALL
  SELECT 'subscription_tiers', 'their subscription',
         (SELECT count(*) FROM public.subscription_tiers WHERE subscription_tiers.user_id = user_reads.user_id)
  UNION ALL
  SELECT 'plan_limits', 'the plans',
         (SELECT count(*) FROM public.plan_limits)
$$;

-- The same reads as the user: owned by authenticated and SECURITY DEFINER, so they run as authenticated under its
-- policies, with the user's JWT claims set for the call only (PostgREST's request.jwt.claims). STABLE: PostgreSQL
-- refuses any INSERT, UPDATE or DELETE inside it, so the monitor reaches authenticated's reads and nothing else.
CREATE FUNCTION aias_runbooks.user_reads_as_user(user_id uuid, email text, tenant_ids uuid[], since timestamptz)
RETURNS TABLE ("table" text, "read" text, "rows" bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  PERFORM set_config('request.jwt.claims',
                     json_build_object('sub', user_id, 'role', 'authenticated', 'email', coalesce(email, ''),
                                       'aud', 'authenticated')::text, true);
  RETURN QUERY SELECT r."table", r."read", r."rows" FROM aias_runbooks.user_reads(user_id, tenant_ids, since) r;
  PERFORM set_config('request.jwt.claims', '', true);
END
$$;
-- Giving a function to authenticated, as postgres (not a superuser), takes membership of authenticated (its
-- CREATEROLE grants that on PostgreSQL 15; on 16 and later Supabase grants postgres authenticated WITH ADMIN OPTION)
-- and authenticated's CREATE on the schema at that moment (checked only then: taken back at once).
GRANT authenticated TO postgres;
GRANT CREATE ON SCHEMA aias_runbooks TO authenticated;
ALTER FUNCTION aias_runbooks.user_reads_as_user(uuid, text, uuid[], timestamptz) OWNER TO authenticated;
REVOKE CREATE ON SCHEMA aias_runbooks FROM authenticated;

REVOKE EXECUTE ON FUNCTION aias_runbooks.user_reads(uuid, uuid[], timestamptz),
  aias_runbooks.user_reads_as_user(uuid, text, uuid[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aias_runbooks.user_reads(uuid, uuid[], timestamptz) TO aias_monitor, authenticated;
GRANT EXECUTE ON FUNCTION aias_runbooks.user_reads_as_user(uuid, text, uuid[], timestamptz) TO aias_monitor;
