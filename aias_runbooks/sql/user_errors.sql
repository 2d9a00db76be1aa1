-- One user's error_logs rows in the last :window_minutes, newest first.
SELECT created_at, level, source, path, message, request_id
FROM public.error_logs
WHERE user_id = CAST(:user_id AS uuid) AND created_at >= now() - make_interval(mins => :window_minutes)
ORDER BY created_at DESC
LIMIT :limit
