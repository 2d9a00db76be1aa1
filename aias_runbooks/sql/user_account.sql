-- One user's account (aias_runbooks.auth_users: created, confirmed, last sign-in, banned) and profile row, by id or email.
SELECT u.id::text AS user_id, u.email, u.created_at, u.email_confirmed_at, u.last_sign_in_at, u.banned_until,
       p.id IS NOT NULL AS has_profile, p.full_name, p.tenant_id::text AS profile_tenant_id,
       p.created_at AS profile_created_at
FROM aias_runbooks.auth_users u
LEFT JOIN public.profiles p ON p.id = u.id
WHERE u.id = CAST(:user_id AS uuid) OR u.email = :email OR u.email = lower(:email)
ORDER BY u.email = :email DESC
LIMIT 1
