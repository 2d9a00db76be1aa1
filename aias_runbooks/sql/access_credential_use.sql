-- API-key and service-role use in the window (api_requests.credential) per credential, key and address: requests, statuses, the key's revocation, whether the address is a known origin (CIDRs) or was used by that key in the baseline.
WITH used AS (
  SELECT r.credential, r.api_key_id, r.ip, count(*) AS requests, min(r.created_at) AS first_at,
         max(r.created_at) AS last_at, count(*) FILTER (WHERE r.status >= 400) AS refused,
         string_agg(DISTINCT r.method || ' ' || r.path, ', ') AS paths
  FROM public.api_requests r
  WHERE r.created_at >= now() - make_interval(mins => :window_minutes)
    AND r.credential IN ('api_key', 'service_role')
  GROUP BY r.credential, r.api_key_id, r.ip
)
SELECT u.credential, u.api_key_id::text AS api_key_id, k.name AS key_name, k.tenant_id::text AS tenant_id,
       k.revoked_at, host(u.ip) AS ip, u.requests, u.refused, u.first_at, u.last_at, u.paths,
       (SELECT count(*) FROM public.api_requests r
        WHERE r.api_key_id = u.api_key_id AND r.ip = u.ip AND k.revoked_at IS NOT NULL
          AND r.created_at >= k.revoked_at
          AND r.created_at >= now() - make_interval(mins => :window_minutes)) AS after_revoked,
       coalesce(u.ip <<= ANY(CAST(:known_origins AS cidr[])), false) AS known_origin,
       u.api_key_id IS NOT NULL AND EXISTS (
         SELECT 1 FROM public.api_requests b
         WHERE b.api_key_id = u.api_key_id AND b.ip = u.ip
           AND b.created_at >= now() - make_interval(mins => :window_minutes) - make_interval(days => :baseline_days)
           AND b.created_at < now() - make_interval(mins => :window_minutes)) AS seen_in_baseline
FROM used u
LEFT JOIN public.api_keys k ON k.id = u.api_key_id
ORDER BY known_origin, u.last_at DESC
LIMIT :limit
