-- Workflow executions created in the last :window_minutes by status, with their mean and longest duration.
SELECT status, count(*) AS executions, round(avg(duration_ms))::int AS mean_ms, max(duration_ms) AS max_ms
FROM public.workflow_executions
WHERE created_at > now() - make_interval(mins => :window_minutes)
GROUP BY status
ORDER BY count(*) DESC
LIMIT 10
