-- Playbook, Check error logs: the 100 most recent error_logs rows (bounded to the last 7 days).
SELECT created_at, level, source, path, message, request_id
FROM public.error_logs
WHERE created_at > now() - interval '7 days'
ORDER BY created_at DESC
LIMIT 100
