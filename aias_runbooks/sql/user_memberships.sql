-- One user's tenant memberships: tenant, role, and the tenant's plan (its best active subscription).
SELECT t.id::text AS tenant_id, t.name AS tenant, t.slug, m.role, m.created_at AS member_since,
       coalesce((SELECT s.tier FROM public.subscription_tiers s
                 WHERE s.tenant_id = m.tenant_id AND s.status IN ('active', 'trialing', 'past_due')
                 ORDER BY CASE s.tier WHEN 'enterprise' THEN 3 WHEN 'pro' THEN 2 ELSE 1 END DESC
                 LIMIT 1), 'free') AS plan
FROM public.tenant_members m
JOIN public.tenants t ON t.id = m.tenant_id
WHERE m.user_id = CAST(:user_id AS uuid)
ORDER BY m.created_at
LIMIT 50
