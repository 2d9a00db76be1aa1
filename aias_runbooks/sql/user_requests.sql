-- One user's API requests in the last :window_minutes, newest first (api_requests by user_id).
SELECT created_at, method, path, status, round(duration_ms::numeric, 1)::float AS duration_ms, error,
       request_id
FROM public.api_requests
WHERE user_id = CAST(:user_id AS uuid) AND created_at >= now() - make_interval(mins => :window_minutes)
ORDER BY created_at DESC
LIMIT :limit
