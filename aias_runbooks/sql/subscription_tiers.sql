-- Playbook, Check subscription status: subscriptions per tier.
SELECT tier, count(*) AS subscriptions FROM public.subscription_tiers GROUP BY tier ORDER BY subscriptions DESC
