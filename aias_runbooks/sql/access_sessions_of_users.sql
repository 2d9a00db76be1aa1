-- What revoking the listed users would end: their live sessions and refresh tokens (counts, the newest session's address and client; never a session id or token).
SELECT u.id::text AS user_id, u.email,
       (SELECT count(*) FROM aias_runbooks.auth_sessions s WHERE s.user_id = u.id) AS sessions,
       (SELECT count(*) FROM aias_runbooks.auth_refresh_tokens t WHERE t.user_id = u.id::text) AS refresh_tokens,
       n.created_at AS newest_session_at, host(n.ip) AS newest_session_ip, n.user_agent AS newest_session_client
FROM aias_runbooks.auth_users u
LEFT JOIN LATERAL (SELECT s.created_at, s.ip, s.user_agent FROM aias_runbooks.auth_sessions s WHERE s.user_id = u.id
                   ORDER BY s.created_at DESC LIMIT 1) n ON true
WHERE u.id::text = ANY(CAST(:user_ids AS text[]))
ORDER BY u.email
LIMIT 500
