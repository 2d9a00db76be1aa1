-- The last failed or timed-out executions of one user's tenants' workflows in the last :window_minutes, with their error.
SELECT e.created_at, t.slug AS tenant, w.name AS workflow, w.integration, e.status, e.attempt, e.duration_ms,
       e.error
FROM public.workflow_executions e
JOIN public.workflows w ON w.id = e.workflow_id
JOIN public.tenants t ON t.id = e.tenant_id
WHERE e.tenant_id = ANY(CAST(:tenant_ids AS uuid[]))
  AND e.created_at >= now() - make_interval(mins => :window_minutes)
  AND e.status IN ('failed', 'timed_out')
ORDER BY e.created_at DESC
LIMIT :limit
