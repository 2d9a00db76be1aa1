-- Finished workflow executions per integration (external API) in the last :window_minutes: failed, timed out, the latest error.
SELECT w.integration, count(*) AS executions,
       count(*) FILTER (WHERE e.status = 'failed') AS failed,
       count(*) FILTER (WHERE e.status = 'timed_out') AS timed_out,
       (array_agg(e.error ORDER BY e.created_at DESC) FILTER (WHERE e.error IS NOT NULL))[1] AS latest_error
FROM public.workflow_executions e
JOIN public.workflows w ON w.id = e.workflow_id
WHERE e.created_at > now() - make_interval(mins => :window_minutes)
  AND e.status IN ('succeeded', 'failed', 'timed_out')
GROUP BY w.integration
ORDER BY count(*) FILTER (WHERE e.status IN ('failed', 'timed_out')) DESC, w.integration
LIMIT 50
