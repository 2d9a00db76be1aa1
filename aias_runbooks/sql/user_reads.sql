-- The reads the app makes for one user (profile, memberships, tenants, workflows, executions since :since, subscription, plans): rows per table as this session may see them.
SELECT 'profiles' AS "table", 'their profile' AS "read",
       (SELECT count(*) FROM public.profiles WHERE id = CAST(:user_id AS uuid)) AS "rows"
UNION ALL
SELECT 'tenant_members', 'their memberships',
       (SELECT count(*) FROM public.tenant_members WHERE user_id = CAST(:user_id AS uuid))
UNION ALL
SELECT 'tenants', 'their tenants',
       (SELECT count(*) FROM public.tenants WHERE id = ANY(CAST(:tenant_ids AS uuid[])))
UNION ALL
SELECT 'workflows', 'their tenants'' workflows',
       (SELECT count(*) FROM public.workflows WHERE tenant_id = ANY(CAST(:tenant_ids AS uuid[])))
UNION ALL
SELECT 'workflow_executions', 'their tenants'' executions since ' || to_char(CAST(:since AS timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
       (SELECT count(*) FROM public.workflow_executions
        WHERE tenant_id = ANY(CAST(:tenant_ids AS uuid[])) AND created_at >= CAST(:since AS timestamptz))
UNION ALL
SELECT 'subscription_tiers', 'their subscription',
       (SELECT count(*) FROM public.subscription_tiers WHERE user_id = CAST(:user_id AS uuid))
UNION ALL
SELECT 'plan_limits', 'the plans',
       (SELECT count(*) FROM public.plan_limits)
