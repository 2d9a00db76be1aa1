-- The playbook's five key metrics per minute over the window (api_requests): 5xx, response P95, /api/healthz P95 (DB latency), webhooks (our own signature probes left out), signups.
SELECT date_trunc('minute', created_at) AS minute,
       count(*) AS requests,
       count(*) FILTER (WHERE status >= 500) AS errors,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS response_p95_ms,
       count(*) FILTER (WHERE path = '/api/healthz') AS db_samples,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE path = '/api/healthz') AS db_p95_ms,
       count(*) FILTER (WHERE path = '/api/stripe/webhook' AND coalesce(request_id, '') NOT LIKE 'aias-probe-%') AS deliveries,
       count(*) FILTER (WHERE path = '/api/stripe/webhook' AND coalesce(request_id, '') NOT LIKE 'aias-probe-%'
                        AND status BETWEEN 200 AND 299) AS delivered,
       count(*) FILTER (WHERE path = '/api/auth/signup' AND (status < 400 OR status = 429 OR status >= 500)) AS signups,
       count(*) FILTER (WHERE path = '/api/auth/signup' AND status < 400) AS signed_up
FROM public.api_requests
WHERE created_at >= date_trunc('minute', now()) - make_interval(mins => :window_minutes - 1)
GROUP BY 1
ORDER BY 1
