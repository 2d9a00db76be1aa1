-- Error log rows (error_logs) per minute over the window: the incident timeline's application errors.
SELECT date_trunc('minute', created_at) AS minute, count(*) AS error_logs
FROM public.error_logs
WHERE created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY 1
ORDER BY 1
