-- Tenants whose workflow executions today (UTC) reached :min_share of their plan's max_executions_per_day, most used first.
WITH plan AS (
  SELECT DISTINCT ON (tenant_id) tenant_id, tier
  FROM public.subscription_tiers
  WHERE tenant_id IS NOT NULL AND status IN ('active', 'trialing')
  ORDER BY tenant_id, CASE tier WHEN 'enterprise' THEN 3 WHEN 'pro' THEN 2 ELSE 1 END DESC
), used AS (
  SELECT tenant_id, count(*) AS executions_today
  FROM public.workflow_executions
  WHERE created_at >= date_trunc('day', now(), 'UTC')
  GROUP BY tenant_id
)
SELECT t.name AS tenant, t.slug, coalesce(p.tier, 'free') AS tier, u.executions_today,
       l.max_executions_per_day AS daily_limit,
       round(u.executions_today::numeric / l.max_executions_per_day, 3)::float AS share
FROM used u
JOIN public.tenants t ON t.id = u.tenant_id
LEFT JOIN plan p ON p.tenant_id = u.tenant_id
JOIN public.plan_limits l ON l.tier = coalesce(p.tier, 'free')
WHERE l.max_executions_per_day IS NOT NULL
  AND u.executions_today >= :min_share * l.max_executions_per_day
ORDER BY u.executions_today::float / l.max_executions_per_day DESC, t.slug
LIMIT :limit
