-- Signup attempts over the window by outcome (api_requests for /api/auth/signup): HTTP status, error, count.
SELECT status, coalesce(error, '') AS error, count(*) AS attempts, max(created_at) AS last_at
FROM public.api_requests
WHERE path = '/api/auth/signup' AND created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY status, coalesce(error, '')
ORDER BY attempts DESC
LIMIT 50
