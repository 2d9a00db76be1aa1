-- The subscription_tiers rows of one user and of the members of their tenants (what billing compares with Stripe).
SELECT s.user_id::text AS user_id, p.email, s.tenant_id::text AS tenant_id, s.tier, s.status,
       s.stripe_customer_id, s.stripe_subscription_id, s.current_period_end, s.updated_at
FROM public.subscription_tiers s
LEFT JOIN public.profiles p ON p.id = s.user_id
WHERE s.user_id = CAST(:user_id AS uuid) OR s.tenant_id = ANY(CAST(:tenant_ids AS uuid[]))
ORDER BY s.user_id = CAST(:user_id AS uuid) DESC, s.updated_at DESC
LIMIT 500
