-- Sessions access: /api/auth/login verifies a password and opens a session, /api/profile and /api/workflows/run act for a session's user.

-- Login (as Supabase Auth does it): the user's password hash, a session row, last_sign_in_at, an audit entry
-- (signup and login, with the client's address). Runs check the user's tenant membership and the plan's room.
-- (auth.users, auth.sessions and the audit log are Supabase Auth's to write: those grants are the platform's.)
GRANT SELECT ON public.tenant_members TO aias_app;

-- A run is refused at the plan's daily limit: it counts the tenant's executions today on every request.
CREATE INDEX workflow_executions_tenant_id_created_at_idx ON public.workflow_executions (tenant_id, created_at);
