-- The workflows of one user's tenants: status, integration, who created them, newest first.
SELECT w.id::text AS workflow_id, t.slug AS tenant, w.name, w.status, w.integration, w.trigger,
       w.user_id = CAST(:user_id AS uuid) AS created_by_user, w.created_at
FROM public.workflows w
JOIN public.tenants t ON t.id = w.tenant_id
WHERE w.tenant_id = ANY(CAST(:tenant_ids AS uuid[]))
ORDER BY w.created_at DESC
LIMIT 200
