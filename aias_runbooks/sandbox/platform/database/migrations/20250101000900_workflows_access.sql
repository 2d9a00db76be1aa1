-- Workflows access: each workflow's integration, retries linked to what they retry, worker heartbeats; the worker writes executions, the monitor reads them.

-- The external API (connector) a workflow calls; rows loaded without one get a connector at random.
ALTER TABLE public.workflows ADD COLUMN integration text NOT NULL
  DEFAULT (ARRAY['slack', 'hubspot', 'openai', 'gmail'])[1 + floor(random() * 4)::int];

-- A retry is a new execution pointing at the one it retries; at most one retry per execution.
ALTER TABLE public.workflow_executions ADD COLUMN retry_of uuid;
CREATE UNIQUE INDEX workflow_executions_retry_of_key ON public.workflow_executions (retry_of)
  WHERE retry_of IS NOT NULL;

-- Each workflow worker upserts its heartbeat: when it was last alive and when it last started an execution.
CREATE TABLE public.worker_heartbeats (
  worker          text PRIMARY KEY,
  last_seen       timestamptz NOT NULL DEFAULT now(),
  last_started_at timestamptz
);
ALTER TABLE public.worker_heartbeats ENABLE ROW LEVEL SECURITY;
GRANT ALL ON public.worker_heartbeats TO service_role;

-- The worker (application role) enqueues executions within each plan's daily limit, runs them and records the
-- outcome; /api/admin/executions/retry (admin token) re-queues failed ones.
GRANT SELECT ON public.plan_limits TO aias_app;
GRANT INSERT, UPDATE ON public.workflow_executions TO aias_app;
GRANT SELECT, INSERT, UPDATE ON public.worker_heartbeats TO aias_app;

-- workflows-not-executing reads executions, heartbeats, tenants and their plans' limits.
GRANT SELECT ON public.workflow_executions, public.worker_heartbeats, public.tenants, public.plan_limits
TO aias_monitor;
CREATE POLICY workflow_executions_monitor_read ON public.workflow_executions FOR SELECT TO aias_monitor
  USING (true);
CREATE POLICY worker_heartbeats_monitor_read ON public.worker_heartbeats FOR SELECT TO aias_monitor USING (true);
CREATE POLICY tenants_monitor_read ON public.tenants FOR SELECT TO aias_monitor USING (true);
CREATE POLICY plan_limits_monitor_read ON public.plan_limits FOR SELECT TO aias_monitor USING (true);
