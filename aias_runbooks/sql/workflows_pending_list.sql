-- The oldest pending workflow executions: workflow, tenant, integration, and how long each has waited.
SELECT e.id::text AS execution, w.name AS workflow, t.slug AS tenant, w.integration, e.created_at,
       extract(epoch FROM now() - e.created_at)::float AS wait_s
FROM public.workflow_executions e
JOIN public.workflows w ON w.id = e.workflow_id
LEFT JOIN public.tenants t ON t.id = e.tenant_id
WHERE e.status = 'pending'
ORDER BY e.created_at
LIMIT :limit
