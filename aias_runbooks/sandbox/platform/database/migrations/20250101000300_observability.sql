-- Platform telemetry: api_requests (one row per HTTP request), error_logs, and rate_limits windows.

CREATE TABLE public.api_requests (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  method      text NOT NULL,
  path        text NOT NULL,
  status      int NOT NULL,
  duration_ms double precision NOT NULL,
  user_id     uuid,
  ip          inet,
  request_id  text,
  error       text
);
CREATE INDEX api_requests_created_at_idx ON public.api_requests (created_at);
CREATE INDEX api_requests_path_created_at_idx ON public.api_requests (path, created_at);

CREATE TABLE public.error_logs (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  level      text NOT NULL DEFAULT 'error' CHECK (level IN ('error', 'warning', 'fatal')),
  source     text NOT NULL,   -- 'api', 'worker', 'stripe-webhook', 'auth', ...
  message    text NOT NULL,
  path       text,
  user_id    uuid,
  request_id text,
  context    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX error_logs_created_at_idx ON public.error_logs (created_at);

CREATE TABLE public.rate_limits (
  key           text NOT NULL,          -- 'ip:203.0.113.7', 'user:<uuid>', 'apikey:<prefix>'
  window_start  timestamptz NOT NULL,
  count         int NOT NULL DEFAULT 0,
  "limit"       int NOT NULL,
  blocked_until timestamptz,
  PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_window_start_idx ON public.rate_limits (window_start);
