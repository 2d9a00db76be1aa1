-- The webhook endpoint's own log over the window: answers by HTTP status and error (api_requests for /api/stripe/webhook; our own signature probes, X-Request-Id aias-probe-..., left out).
SELECT status, coalesce(error, '') AS error, count(*) AS requests, min(created_at) AS first_at, max(created_at) AS last_at
FROM public.api_requests
WHERE path = '/api/stripe/webhook' AND created_at >= now() - make_interval(mins => :window_minutes)
  AND coalesce(request_id, '') NOT LIKE 'aias-probe-%'
GROUP BY status, coalesce(error, '')
ORDER BY requests DESC
LIMIT 20
