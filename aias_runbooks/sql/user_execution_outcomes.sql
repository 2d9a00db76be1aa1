-- Executions of one user's tenants' workflows in the last :window_minutes, by tenant and status.
SELECT t.slug AS tenant, e.status, count(*) AS executions, max(e.created_at) AS latest
FROM public.workflow_executions e
JOIN public.tenants t ON t.id = e.tenant_id
WHERE e.tenant_id = ANY(CAST(:tenant_ids AS uuid[]))
  AND e.created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY t.slug, e.status
ORDER BY t.slug, executions DESC
