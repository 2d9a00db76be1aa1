-- Errors over the window grouped by fingerprint (the message with ids and numbers masked) and route (error_logs).
WITH errors AS (
  SELECT created_at, coalesce(path, '') AS route, message,
         regexp_replace(message, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]+', '#', 'gi') AS shape
  FROM public.error_logs
  WHERE level IN ('error', 'fatal') AND created_at >= now() - make_interval(mins => :window_minutes)
)
SELECT left(md5(shape), 10) AS fingerprint, route, min(message) AS example, count(*) AS errors,
       min(created_at) AS first_seen, max(created_at) AS last_seen
FROM errors
GROUP BY shape, route
ORDER BY errors DESC
LIMIT 20
