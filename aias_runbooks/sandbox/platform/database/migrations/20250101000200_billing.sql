-- Billing: plan_limits (with the three tiers), subscription_tiers, and the Stripe webhook event log stripe_events.

CREATE TABLE public.plan_limits (
  tier                        text PRIMARY KEY CHECK (tier IN ('free', 'pro', 'enterprise')),
  max_workflows               int,   -- NULL = unlimited
  max_executions_per_day      int,   -- NULL = unlimited
  max_api_requests_per_minute int    -- NULL = unlimited
);
INSERT INTO public.plan_limits (tier, max_workflows, max_executions_per_day, max_api_requests_per_minute) VALUES
  ('free',       3,    100,  60),
  ('pro',        50,   5000, 600),
  ('enterprise', NULL, NULL, 6000);

CREATE TABLE public.subscription_tiers (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid NOT NULL UNIQUE REFERENCES auth.users (id) ON DELETE CASCADE,
  tenant_id              uuid REFERENCES public.tenants (id) ON DELETE SET NULL,
  tier                   text NOT NULL DEFAULT 'free' REFERENCES public.plan_limits (tier),
  status                 text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'trialing', 'past_due', 'canceled', 'incomplete')),
  stripe_customer_id     text,
  stripe_subscription_id text UNIQUE,
  current_period_end     timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz DEFAULT now()
);
CREATE INDEX subscription_tiers_tier_idx ON public.subscription_tiers (tier);
CREATE INDEX subscription_tiers_tenant_id_idx ON public.subscription_tiers (tenant_id);
CREATE INDEX subscription_tiers_stripe_customer_id_idx ON public.subscription_tiers (stripe_customer_id);

-- One row per Stripe webhook event received; created_at is Stripe's event creation time.
CREATE TABLE public.stripe_events (
  id           text PRIMARY KEY,            -- 'evt_...'
  type         text NOT NULL,
  created_at   timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  status       text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'processed', 'failed', 'ignored')),
  error        text,
  livemode     boolean NOT NULL DEFAULT false,
  payload      jsonb
);
CREATE INDEX stripe_events_created_at_idx ON public.stripe_events (created_at);
CREATE INDEX stripe_events_received_at_idx ON public.stripe_events (received_at);
