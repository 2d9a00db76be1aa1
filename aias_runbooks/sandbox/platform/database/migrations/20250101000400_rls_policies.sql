-- Privileges for the API roles and row level security: tenant/user tables via auth.uid(), infrastructure tables service_role-only, plan_limits public-read.

-- Helpers for the policies live in a schema that is not exposed through the API.  They are
-- SECURITY DEFINER so a policy on tenant_members can consult tenant_members without recursing.
CREATE SCHEMA IF NOT EXISTS private;
REVOKE ALL ON SCHEMA private FROM PUBLIC;
GRANT USAGE ON SCHEMA private TO authenticated, service_role;

CREATE OR REPLACE FUNCTION private.user_tenant_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT tm.tenant_id FROM public.tenant_members tm WHERE tm.user_id = auth.uid()
$$;

CREATE OR REPLACE FUNCTION private.user_admin_tenant_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT tm.tenant_id FROM public.tenant_members tm
  WHERE tm.user_id = auth.uid() AND tm.role IN ('owner', 'admin')
$$;

REVOKE EXECUTE ON FUNCTION private.user_tenant_ids(), private.user_admin_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.user_tenant_ids(), private.user_admin_tenant_ids() TO authenticated, service_role;

-- Table privileges.  anon: only the public price list.  authenticated: the tenant tables,
-- filtered by the policies below.  service_role: everything (it also bypasses RLS).
GRANT SELECT ON public.plan_limits TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE ON
  public.tenants, public.tenant_members, public.profiles, public.subscription_tiers,
  public.workflows, public.workflow_executions, public.api_keys
TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO service_role;

-- Enable RLS on every public table.
ALTER TABLE public.tenants             ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.tenant_members      ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.profiles            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.subscription_tiers  ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.workflows           ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.workflow_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.api_keys            ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.plan_limits         ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.api_requests        ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.error_logs          ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.stripe_events       ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.rate_limits         ENABLE ROW LEVEL SECURITY;

-- profiles: each user sees and edits only their own.
CREATE POLICY profiles_select_own ON public.profiles FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid()));
CREATE POLICY profiles_insert_own ON public.profiles FOR INSERT TO authenticated
  WITH CHECK (id = (SELECT auth.uid()));
CREATE POLICY profiles_update_own ON public.profiles FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

-- tenants: members read their tenant; owners/admins may rename it.
CREATE POLICY tenants_select_member ON public.tenants FOR SELECT TO authenticated
  USING (id IN (SELECT private.user_tenant_ids()));
CREATE POLICY tenants_update_admin ON public.tenants FOR UPDATE TO authenticated
  USING (id IN (SELECT private.user_admin_tenant_ids()))
  WITH CHECK (id IN (SELECT private.user_admin_tenant_ids()));

-- tenant_members: members see their tenant's roster; owners/admins manage it.
CREATE POLICY tenant_members_select_member ON public.tenant_members FOR SELECT TO authenticated
  USING (tenant_id IN (SELECT private.user_tenant_ids()));
CREATE POLICY tenant_members_insert_admin ON public.tenant_members FOR INSERT TO authenticated
  WITH CHECK (tenant_id IN (SELECT private.user_admin_tenant_ids()));
CREATE POLICY tenant_members_update_admin ON public.tenant_members FOR UPDATE TO authenticated
  USING (tenant_id IN (SELECT private.user_admin_tenant_ids()))
  WITH CHECK (tenant_id IN (SELECT private.user_admin_tenant_ids()));

-- subscription_tiers: a user reads their own subscription; writes come from billing (service_role).
CREATE POLICY subscription_tiers_select_own ON public.subscription_tiers FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid()));

-- workflows: tenant members read, create (as themselves) and edit their tenant's workflows.
CREATE POLICY workflows_select_member ON public.workflows FOR SELECT TO authenticated
  USING (tenant_id IN (SELECT private.user_tenant_ids()));
CREATE POLICY workflows_insert_member ON public.workflows FOR INSERT TO authenticated
  WITH CHECK (tenant_id IN (SELECT private.user_tenant_ids()) AND user_id = (SELECT auth.uid()));
CREATE POLICY workflows_update_member ON public.workflows FOR UPDATE TO authenticated
  USING (tenant_id IN (SELECT private.user_tenant_ids()))
  WITH CHECK (tenant_id IN (SELECT private.user_tenant_ids()));

-- workflow_executions: tenant members read them and may start runs of their tenant's workflows.
CREATE POLICY workflow_executions_select_member ON public.workflow_executions FOR SELECT TO authenticated
  USING (tenant_id IN (SELECT private.user_tenant_ids()));
CREATE POLICY workflow_executions_insert_member ON public.workflow_executions FOR INSERT TO authenticated
  WITH CHECK (
    tenant_id IN (SELECT private.user_tenant_ids())
    AND EXISTS (SELECT 1 FROM public.workflows w
                WHERE w.id = workflow_executions.workflow_id AND w.tenant_id = workflow_executions.tenant_id)
  );

-- api_keys: only tenant owners/admins see and manage keys.
CREATE POLICY api_keys_select_admin ON public.api_keys FOR SELECT TO authenticated
  USING (tenant_id IN (SELECT private.user_admin_tenant_ids()));
CREATE POLICY api_keys_insert_admin ON public.api_keys FOR INSERT TO authenticated
  WITH CHECK (tenant_id IN (SELECT private.user_admin_tenant_ids()));
CREATE POLICY api_keys_update_admin ON public.api_keys FOR UPDATE TO authenticated
  USING (tenant_id IN (SELECT private.user_admin_tenant_ids()))
  WITH CHECK (tenant_id IN (SELECT private.user_admin_tenant_ids()));

-- plan_limits: the public price list, readable by everyone; only service_role writes.
CREATE POLICY plan_limits_read_all ON public.plan_limits FOR SELECT TO anon, authenticated
  USING (true);
CREATE POLICY plan_limits_service_role ON public.plan_limits FOR ALL TO service_role
  USING (true) WITH CHECK (true);

-- Infrastructure tables: service_role only (it bypasses RLS anyway; the explicit policy
-- documents the intent and keeps "RLS enabled but no policy" lints quiet).
CREATE POLICY api_requests_service_role ON public.api_requests FOR ALL TO service_role
  USING (true) WITH CHECK (true);
CREATE POLICY error_logs_service_role ON public.error_logs FOR ALL TO service_role
  USING (true) WITH CHECK (true);
CREATE POLICY stripe_events_service_role ON public.stripe_events FOR ALL TO service_role
  USING (true) WITH CHECK (true);
CREATE POLICY rate_limits_service_role ON public.rate_limits FOR ALL TO service_role
  USING (true) WITH CHECK (true);
