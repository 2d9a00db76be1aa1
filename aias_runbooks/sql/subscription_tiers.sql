-- Playbook, Check subscription status: subscriptions per tier.
SELECT tier, count(*) AS subscriptions FROM subscription_tiers GROUP BY tier ORDER BY subscriptions DESC
