-- Successful logins in the window (Supabase Auth's audit log, through aias_runbooks.auth_audit_log_entries), each with whether its address was new for that user: not the address of any successful request of theirs (api_requests, by user and time) in the baseline_days before the window.
WITH logins AS (
  SELECT created_at, payload ->> 'actor_id' AS user_id, ip_address AS ip
  FROM aias_runbooks.auth_audit_log_entries
  WHERE created_at >= now() - make_interval(mins => :window_minutes)
    AND payload ->> 'action' = 'login'
  ORDER BY created_at DESC
  LIMIT :limit
), baseline AS (
  SELECT now() - make_interval(mins => :window_minutes) - make_interval(days => :baseline_days) AS starts,
         now() - make_interval(mins => :window_minutes) AS ends
)
SELECT l.created_at, l.user_id, u.email, l.ip,
       NOT EXISTS (SELECT 1 FROM public.api_requests r
                   WHERE r.user_id = u.id AND r.created_at >= b.starts AND r.created_at < b.ends AND r.status < 400)
         AS first_seen,
       NOT EXISTS (SELECT 1 FROM public.api_requests r
                   WHERE r.user_id = u.id AND r.created_at >= b.starts AND r.created_at < b.ends AND r.status < 400
                     AND host(r.ip) = l.ip) AS new_ip
FROM logins l
CROSS JOIN baseline b
LEFT JOIN aias_runbooks.auth_users u
  ON u.id = CASE WHEN l.user_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN l.user_id::uuid END
ORDER BY l.created_at DESC
