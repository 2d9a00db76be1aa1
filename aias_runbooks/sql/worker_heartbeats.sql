-- Workflow workers' heartbeats: when each was last alive and last started an execution, seconds ago.
SELECT worker, last_seen, last_started_at,
       extract(epoch FROM now() - last_seen)::float AS seen_s_ago,
       extract(epoch FROM now() - last_started_at)::float AS started_s_ago
FROM public.worker_heartbeats
ORDER BY last_seen DESC
LIMIT 50
