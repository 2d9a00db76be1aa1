-- Pending workflow executions: how many, how many waited longer than :stuck_minutes, the oldest wait in seconds.
SELECT count(*) AS pending,
       count(*) FILTER (WHERE created_at < now() - make_interval(mins => :stuck_minutes)) AS stuck,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float AS oldest_wait_s,
       min(created_at) AS oldest_created_at
FROM public.workflow_executions
WHERE status = 'pending'
