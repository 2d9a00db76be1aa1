-- The app's email failures over the window (error_logs with source 'email'): each message and how often.
SELECT message, count(*) AS errors, max(created_at) AS last_at
FROM public.error_logs
WHERE source = 'email' AND created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY message
ORDER BY errors DESC
LIMIT 20
