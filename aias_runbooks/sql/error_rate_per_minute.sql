-- Requests and server errors (5xx) per minute over the window (api_requests): the error-rate series.
SELECT date_trunc('minute', created_at) AS minute, count(*) AS requests, count(*) FILTER (WHERE status >= 500) AS errors
FROM public.api_requests
WHERE created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY 1
ORDER BY 1
