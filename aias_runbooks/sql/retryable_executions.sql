-- Failed or timed-out workflow executions of the last :window_minutes that were never retried, newest first.
SELECT e.id::text AS execution, w.name AS workflow, t.slug AS tenant, w.integration, e.status, e.attempt,
       e.retry_of::text AS retry_of, e.created_at, e.error
FROM public.workflow_executions e
JOIN public.workflows w ON w.id = e.workflow_id
LEFT JOIN public.tenants t ON t.id = e.tenant_id
WHERE e.status IN ('failed', 'timed_out')
  AND e.created_at > now() - make_interval(mins => :window_minutes)
  AND NOT EXISTS (SELECT 1 FROM public.workflow_executions r WHERE r.retry_of = e.id)
ORDER BY e.created_at DESC
LIMIT :limit
