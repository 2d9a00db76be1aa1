-- subscription_tiers rows billing compares with Stripe: every row with a Stripe id or a paid tier, and the users named.
SELECT s.user_id::text AS user_id, p.email, s.tier, s.status, s.stripe_customer_id, s.stripe_subscription_id,
       s.updated_at
FROM public.subscription_tiers s
LEFT JOIN public.profiles p ON p.id = s.user_id
WHERE s.stripe_subscription_id IS NOT NULL OR s.stripe_customer_id IS NOT NULL OR s.tier <> 'free'
   OR s.user_id::text = ANY(CAST(:user_ids AS text[]))
