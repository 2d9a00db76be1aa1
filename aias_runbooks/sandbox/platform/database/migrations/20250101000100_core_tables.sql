-- Core tenant data: tenants, tenant_members, profiles, workflows, workflow_executions, api_keys.

CREATE TABLE public.tenants (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL,
  slug       text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.tenant_members (
  tenant_id  uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  role       text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_user_id_idx ON public.tenant_members (user_id);

CREATE TABLE public.profiles (
  id         uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  email      text,
  full_name  text,
  tenant_id  uuid REFERENCES public.tenants (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz DEFAULT now()
);
CREATE INDEX profiles_created_at_idx ON public.profiles (created_at);
CREATE INDEX profiles_tenant_id_idx ON public.profiles (tenant_id);

CREATE TABLE public.workflows (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  user_id         uuid REFERENCES auth.users (id) ON DELETE SET NULL,
  name            text NOT NULL,
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'archived')),
  trigger         text,
  timeout_seconds int NOT NULL DEFAULT 60,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz DEFAULT now()
);
CREATE INDEX workflows_created_at_idx ON public.workflows (created_at);
CREATE INDEX workflows_tenant_id_idx ON public.workflows (tenant_id);
CREATE INDEX workflows_user_id_idx ON public.workflows (user_id);

-- tenant_id/user_id are denormalised copies (no FK) so the hot insert path stays cheap.
CREATE TABLE public.workflow_executions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES public.workflows (id) ON DELETE CASCADE,
  tenant_id   uuid,
  user_id     uuid,
  status      text NOT NULL DEFAULT 'pending'
              CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'timed_out', 'canceled')),
  attempt     int NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz,
  duration_ms int,
  error       text
);
CREATE INDEX workflow_executions_status_created_at_idx ON public.workflow_executions (status, created_at);
CREATE INDEX workflow_executions_created_at_idx ON public.workflow_executions (created_at);
CREATE INDEX workflow_executions_workflow_id_idx ON public.workflow_executions (workflow_id);

CREATE TABLE public.api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  name         text NOT NULL,
  prefix       text NOT NULL,
  key_hash     text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_id_idx ON public.api_keys (tenant_id);
