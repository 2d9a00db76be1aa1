-- Failed logins in the window (api_requests: /api/auth/login answered 400, invalid credentials): when, from which address, and the account tried when it exists.
SELECT r.created_at, host(r.ip) AS ip, r.user_id::text AS user_id, u.email
FROM public.api_requests r
LEFT JOIN aias_runbooks.auth_users u ON u.id = r.user_id
WHERE r.path = '/api/auth/login' AND r.status = 400
  AND r.created_at >= now() - make_interval(mins => :window_minutes)
ORDER BY r.created_at DESC
LIMIT :limit
