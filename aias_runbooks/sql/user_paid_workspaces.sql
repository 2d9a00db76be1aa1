-- The workspace (tenant) one user's subscription pays for, its tier and status, and whether they are still a member of it.
SELECT s.tenant_id::text AS tenant_id, t.name AS tenant, t.slug, s.tier, s.status, s.stripe_subscription_id,
       EXISTS (SELECT 1 FROM public.tenant_members m
               WHERE m.tenant_id = s.tenant_id AND m.user_id = s.user_id) AS member
FROM public.subscription_tiers s
LEFT JOIN public.tenants t ON t.id = s.tenant_id
WHERE s.user_id = CAST(:user_id AS uuid) AND s.tenant_id IS NOT NULL
