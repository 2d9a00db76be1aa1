-- Errors over the window by route and message, whole (error_logs), most frequent first, with the window's total; checks.errors groups the messages by pattern (patterns.normalise).
SELECT coalesce(path, '') AS route, message, count(*) AS errors, min(created_at) AS first_seen,
       max(created_at) AS last_seen, sum(count(*)) OVER () AS window_errors
FROM public.error_logs
WHERE level IN ('error', 'fatal') AND created_at >= now() - make_interval(mins => :window_minutes)
GROUP BY coalesce(path, ''), message
ORDER BY errors DESC
LIMIT 1000
