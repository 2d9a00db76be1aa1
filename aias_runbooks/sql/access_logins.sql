-- Successful logins in the window (auth.audit_log_entries) with whether the address was new for that user: never seen in any of their audit entries of the baseline_days before it.
WITH logins AS (
  SELECT created_at, payload ->> 'actor_id' AS user_id, ip_address AS ip
  FROM auth.audit_log_entries
  WHERE created_at >= now() - make_interval(mins => :window_minutes)
    AND payload ->> 'action' = 'login'
  ORDER BY created_at DESC
  LIMIT :limit
), history AS (
  SELECT e.created_at, e.payload ->> 'actor_id' AS user_id, e.ip_address AS ip
  FROM auth.audit_log_entries e
  WHERE e.created_at >= now() - make_interval(mins => :window_minutes) - make_interval(days => :baseline_days)
    AND e.payload ->> 'actor_id' IN (SELECT user_id FROM logins)
)
SELECT l.created_at, l.user_id, u.email, l.ip,
       NOT EXISTS (SELECT 1 FROM history h WHERE h.user_id = l.user_id AND h.created_at < l.created_at)
         AS first_seen,
       NOT EXISTS (SELECT 1 FROM history h WHERE h.user_id = l.user_id AND h.ip = l.ip
                   AND h.created_at < l.created_at) AS new_ip
FROM logins l
LEFT JOIN auth.users u ON u.id::text = l.user_id
ORDER BY l.created_at DESC
LIMIT :limit
