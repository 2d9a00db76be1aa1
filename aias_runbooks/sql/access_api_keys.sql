-- The listed API keys (id, tenant, name, created, last used, revoked; never the key or its hash).
SELECT k.id::text AS api_key_id, k.tenant_id::text AS tenant_id, k.name, k.created_at, k.last_used_at, k.revoked_at
FROM public.api_keys k
WHERE k.id::text = ANY(CAST(:key_ids AS text[]))
ORDER BY k.created_at
LIMIT 500
