-- Bulk demo data for the sandbox (healthy platform, all times relative to now()); row counts scale with aias.seed_scale.

SET LOCAL client_min_messages = warning;
SET LOCAL work_mem = '64MB';
SET LOCAL maintenance_work_mem = '256MB';

-- Validate the scale setting early (NULL/empty means 1).
DO $$
DECLARE
  raw text := nullif(btrim(coalesce(current_setting('aias.seed_scale', true), '')), '');
BEGIN
  IF raw IS NOT NULL AND (raw !~ '^[0-9]*\.?[0-9]+$' OR raw::numeric <= 0) THEN
    RAISE EXCEPTION 'aias.seed_scale must be a positive number, got %', raw;
  END IF;
END
$$;

-- Deterministic pseudo-randomness: every draw is a hash of (row index, salt), so a run is
-- reproducible (apart from now()).  Helpers live in pg_temp and are dropped at the end.
CREATE OR REPLACE FUNCTION pg_temp.scale() RETURNS numeric
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(btrim(coalesce(current_setting('aias.seed_scale', true), '')), '')::numeric, 1)
$$;

-- n rows at scale 1 -> n * scale rows (at least 1).
CREATE OR REPLACE FUNCTION pg_temp.n(base numeric) RETURNS int
LANGUAGE sql STABLE AS $$ SELECT greatest(1, round(base * pg_temp.scale()))::int $$;

-- A row count: aias.seed_<kind> when set (the large sandbox sets each table's), else base * scale.
CREATE OR REPLACE FUNCTION pg_temp.cnt(kind text, base numeric) RETURNS int
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(btrim(coalesce(current_setting('aias.seed_' || kind, true), '')), '')::int, pg_temp.n(base))
$$;

-- A shape setting: aias.seed_<name> when set, else the default (history hours 72, no daily cycle, tenant skew 1.6).
CREATE OR REPLACE FUNCTION pg_temp.knob(name text, fallback float8) RETURNS float8
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(btrim(coalesce(current_setting('aias.seed_' || name, true), '')), '')::float8, fallback)
$$;

-- Uniform in (0, 1).
CREATE OR REPLACE FUNCTION pg_temp.h(i bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT ((hashint8extended(i, salt) & 281474976710655)::double precision + 0.5) / 281474976710656.0
$$;

-- Standard normal (Box-Muller).
CREATE OR REPLACE FUNCTION pg_temp.z(i bigint, salt bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT sqrt(-2.0 * ln(pg_temp.h(i, salt))) * cos(2.0 * pi() * pg_temp.h(i, salt + 7919))
$$;

-- User i's own address: at home, or on the phone (both in 100.64.0.0/10, where carrier NAT puts most people).
-- Stable across the history, so that a login from elsewhere stands out as it would in production.
CREATE OR REPLACE FUNCTION pg_temp.address(i bigint, phone boolean) RETURNS inet
LANGUAGE sql IMMUTABLE AS $$
  SELECT '100.64.0.1'::inet + floor(pg_temp.h(i, CASE WHEN phone THEN 37 ELSE 36 END) * 4194300)::bigint
$$;

-- A stable, version-4-shaped uuid derived from a text key.
CREATE OR REPLACE FUNCTION pg_temp.uid(k text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT overlay(overlay(md5(k) PLACING '4' FROM 13) PLACING '8' FROM 17)::uuid
$$;

-- The seed defines the baseline state: clear any previous data so it can be re-run.
TRUNCATE auth.audit_log_entries, auth.sessions, auth.users,
         public.tenants, public.tenant_members, public.profiles, public.subscription_tiers,
         public.workflows, public.workflow_executions, public.api_keys,
         public.api_requests, public.error_logs, public.stripe_events, public.rate_limits
  RESTART IDENTITY CASCADE;

-- ---------------------------------------------------------------------------------------------
-- Users.  i = 1..U ordered by signup time: 88% signed up 90..30 days ago, 12% in the last 30 days.
-- Users 1..T are the tenant owners (user t owns tenant t).
-- ---------------------------------------------------------------------------------------------
DROP TABLE IF EXISTS pg_temp._u;
CREATE TEMP TABLE _u AS
WITH p AS (SELECT pg_temp.cnt('users', 500) AS nu, pg_temp.cnt('tenants', 40) AS nt),
g AS (
  SELECT i, p.nu, p.nt, (i - 0.5) / p.nu AS f
  FROM p, generate_series(1, (SELECT nu FROM p)) AS i
),
a AS (
  SELECT i, nu, nt,
         CASE WHEN f < 0.88 THEN 90 - (f / 0.88) * 60 ELSE 30 - ((f - 0.88) / 0.12) * 30 END
         + (pg_temp.h(i, 11) - 0.5) * 0.9
           * CASE WHEN f < 0.88 THEN 60.0 / (0.88 * nu) ELSE 30.0 / (0.12 * nu) END AS age_days
  FROM g
)
SELECT i,
       pg_temp.uid('user:' || i) AS id,
       'user' || lpad(i::text, greatest(4, length(i::text)), '0') || '@example.test' AS email,
       (ARRAY['Ada','Alan','Grace','Linus','Margaret','Ken','Barbara','Dennis','Frances','John',
              'Radia','Tim','Hedy','Edsger','Katherine','Donald','Sophie','Guido','Anita','Niklaus'])
         [1 + floor(pg_temp.h(i, 12) * 20)::int]
       || ' ' ||
       (ARRAY['Lovelace','Turing','Hopper','Torvalds','Hamilton','Thompson','Liskov','Ritchie','Allen',
              'McCarthy','Perlman','Berners-Lee','Lamarr','Dijkstra','Johnson','Knuth','Wilson','Rossum',
              'Borg','Wirth','Nakamura','Okafor','Silva','Novak','Kowalski'])
         [1 + floor(pg_temp.h(i, 13) * 25)::int] AS full_name,
       now() - age_days * interval '1 day' AS created_at,
       CASE WHEN i <= nt THEN i ELSE 1 + floor(nt * power(pg_temp.h(i, 14), pg_temp.knob('tenant_skew', 1.6)))::int END AS tenant_i,
       CASE WHEN i <= nt THEN 'owner' WHEN pg_temp.h(i, 15) < 0.10 THEN 'admin' ELSE 'member' END AS role
FROM a;
ALTER TABLE _u ADD PRIMARY KEY (i);
-- last sign-in: recent (last 7 days) for ~85%, otherwise somewhere since signup.
ALTER TABLE _u ADD COLUMN last_sign_in_at timestamptz;
UPDATE _u SET last_sign_in_at =
  CASE WHEN pg_temp.h(i, 16) < 0.85
       THEN greatest(created_at + interval '2 minutes', now() - pg_temp.h(i, 17) * interval '7 days')
       ELSE created_at + pg_temp.h(i, 17) * (now() - created_at) END;

-- Scale-derived constants, computed once.
DROP TABLE IF EXISTS pg_temp._c;
CREATE TEMP TABLE _c AS
SELECT now() - pg_temp.knob('hours', 72) * interval '1 hour' AS t0,
       pg_temp.knob('hours', 72) / 24 AS days,
       pg_temp.cnt('requests', 129600) AS nreq,
       pg_temp.knob('hours', 72) * interval '1 hour' / pg_temp.cnt('requests', 129600) AS req_step,
       pg_temp.cnt('executions', 20000) AS nexec,
       (pg_temp.knob('hours', 72) * interval '1 hour' - interval '20 minutes') / pg_temp.cnt('executions', 20000) AS exec_step,
       -- API traffic comes from users who signed up before the window (88 % signed up 30+ days ago)
       greatest(1, floor(CASE WHEN pg_temp.knob('hours', 72) <= 72 THEN 0.98 ELSE 0.88 END
                         * pg_temp.cnt('users', 500)))::int AS nactive,
       -- daily cycle of API traffic: amplitude a (0 = flat), busiest at 14:00 UTC; p = that hour's offset from t0
       pg_temp.knob('daily_cycle', 0) AS cycle,
       (((14 * 3600 - mod(extract(epoch FROM now() - pg_temp.knob('hours', 72) * interval '1 hour')::numeric, 86400))
         / 86400 + 1) % 1)::float8 AS peak;

INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, last_sign_in_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at, banned_until)
SELECT '00000000-0000-0000-0000-000000000000'::uuid, id, 'authenticated', 'authenticated', email,
       '$2a$10$' || substr(md5('pw1:' || i) || md5('pw2:' || i), 1, 53),
       CASE WHEN pg_temp.h(i, 18) < 0.95 THEN created_at + pg_temp.h(i, 19) * interval '20 minutes' END,
       last_sign_in_at,
       '{"provider": "email", "providers": ["email"]}'::jsonb,
       jsonb_build_object('full_name', full_name),
       created_at, last_sign_in_at, NULL
FROM _u;

-- Supabase Auth's email identity of each user (provider_id is the user's id; identity_data as GoTrue writes it).
INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
SELECT id::text, id,
       jsonb_build_object('sub', id::text, 'email', email, 'email_verified', pg_temp.h(i, 18) < 0.95,
                          'phone_verified', false),
       'email', last_sign_in_at, created_at, last_sign_in_at
FROM _u;

INSERT INTO public.tenants (id, name, slug, created_at)
SELECT pg_temp.uid('tenant:' || u.i),
       nm.name,
       lower(regexp_replace(nm.name, '[^A-Za-z0-9]+', '-', 'g')) || '-' || u.i,
       u.created_at - interval '1 minute'
FROM _u u
CROSS JOIN LATERAL (
  SELECT (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Stark','Wayne','Wonka','Soylent','Tyrell',
                'Cyberdyne','Aperture','Vandelay','Pied Piper','Massive Dynamic','Oscorp','Gringotts',
                'Monarch','Dunder','Vehement'])[1 + floor(pg_temp.h(u.i, 21) * 20)::int]
         || ' ' ||
         (ARRAY['Labs','Systems','Analytics','Corp','Studio','AI','Works','Cloud','Logistics','Health'])
           [1 + floor(pg_temp.h(u.i, 22) * 10)::int] AS name
) nm
WHERE u.i <= pg_temp.cnt('tenants', 40);

INSERT INTO public.profiles (id, email, full_name, tenant_id, created_at, updated_at)
SELECT id, email, full_name, pg_temp.uid('tenant:' || tenant_i), created_at + interval '1 second',
       created_at + pg_temp.h(i, 23) * (now() - created_at)
FROM _u;

INSERT INTO public.tenant_members (tenant_id, user_id, role, created_at)
SELECT pg_temp.uid('tenant:' || tenant_i), id, role, created_at + interval '1 second'
FROM _u;

-- ~60% of users hold a live session.
INSERT INTO auth.sessions (id, user_id, aal, created_at, updated_at, not_after, user_agent, ip)
SELECT pg_temp.uid('session:' || i), id, 'aal1', last_sign_in_at,
       least(now(), last_sign_in_at + pg_temp.h(i, 32) * interval '6 hours'),
       last_sign_in_at + interval '30 days',
       (ARRAY['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15',
              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36',
              'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
              'aias-cli/1.4.2 python-httpx/0.27'])[1 + floor(pg_temp.h(i, 33) * 5)::int],
       pg_temp.address(i, pg_temp.h(i, 34) < 0.2)
FROM _u
WHERE pg_temp.h(i, 31) < 0.60;

-- Audit log: one signup per user plus 0..10 logins each (the last one at last_sign_in_at).
INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
SELECT '00000000-0000-0000-0000-000000000000'::uuid,
       pg_temp.uid('audit:' || u.i || ':' || e.j),
       -- as GoTrue's NewAuditLogEntry writes it: actor_name from the user's metadata full_name
       json_build_object('action', e.action, 'actor_id', u.id, 'actor_username', u.email, 'actor_name', u.full_name,
                         'actor_via_sso', false, 'log_type', CASE WHEN e.j = 0 THEN 'team' ELSE 'account' END,
                         'traits', json_build_object('provider', 'email')),
       e.ts,
       -- people sign in from home and, one time in five, from their phone: the same two addresses throughout
       host(pg_temp.address(u.i, pg_temp.h(u.i * 16 + e.j, 43) < 0.2))
FROM _u u
CROSS JOIN LATERAL (
  SELECT 0 AS j, 'user_signedup' AS action, u.created_at AS ts
  UNION ALL
  SELECT j, 'login',
         CASE WHEN j = k.n THEN u.last_sign_in_at
              ELSE u.created_at + (u.last_sign_in_at - u.created_at) * ((j - 1 + pg_temp.h(u.i * 16 + j, 42)) / k.n) END
  FROM (SELECT floor(pg_temp.h(u.i, 41) * 11)::int AS n) k, generate_series(1, k.n) AS j
) e;

-- ---------------------------------------------------------------------------------------------
-- Billing: one subscription per user, ~70% free / ~25% pro / ~5% enterprise.
-- ---------------------------------------------------------------------------------------------
INSERT INTO public.subscription_tiers (id, user_id, tenant_id, tier, status, stripe_customer_id,
                                       stripe_subscription_id, current_period_end, created_at, updated_at)
SELECT pg_temp.uid('sub:' || i), id, pg_temp.uid('tenant:' || tenant_i), tier, status,
       CASE WHEN tier <> 'free' THEN 'cus_' || substr(md5('cus:' || i), 1, 14) END,
       CASE WHEN tier <> 'free' THEN 'sub_' || substr(md5('sub:' || i), 1, 24) END,
       CASE WHEN tier = 'free' THEN NULL
            WHEN status = 'canceled' THEN now() - pg_temp.h(i, 53) * interval '20 days'
            WHEN status = 'trialing' THEN now() + (1 + pg_temp.h(i, 53) * 13) * interval '1 day'
            ELSE now() + (1 + pg_temp.h(i, 53) * 29) * interval '1 day' END,
       created_at + interval '2 seconds',
       greatest(created_at + interval '2 seconds', now() - pg_temp.h(i, 54) * interval '30 days')
FROM (
  SELECT u.*,
         -- paid share 30 % (aias.seed_paid_share: the large sandbox's 50 k users convert as freemium does)
         CASE WHEN pg_temp.h(i, 51) < 1 - pg_temp.knob('paid_share', 0.30) THEN 'free'
              WHEN pg_temp.h(i, 51) < 1 - pg_temp.knob('paid_share', 0.30) / 6 THEN 'pro'
              ELSE 'enterprise' END AS tier,
         CASE WHEN pg_temp.h(i, 51) < 1 - pg_temp.knob('paid_share', 0.30) THEN 'active'   -- free plans are simply active
              WHEN pg_temp.h(i, 52) < 0.04 THEN 'trialing' WHEN pg_temp.h(i, 52) < 0.07 THEN 'canceled'
              ELSE 'active' END AS status
  FROM _u u
) s;

-- ---------------------------------------------------------------------------------------------
-- Workflows: uniform over the last 90 days, each owned by a user who had signed up by then.
-- ---------------------------------------------------------------------------------------------
INSERT INTO public.workflows (id, tenant_id, user_id, name, status, trigger, timeout_seconds, created_at, updated_at)
SELECT pg_temp.uid('workflow:' || w.i), pg_temp.uid('tenant:' || u.tenant_i), u.id,
       (ARRAY['Sync','Enrich','Route','Summarize','Triage','Notify on','Backfill','Score','Archive','Export'])
         [1 + floor(pg_temp.h(w.i, 63) * 10)::int] || ' ' ||
       (ARRAY['HubSpot leads','Zendesk tickets','Slack mentions','Stripe invoices','Gmail inbox',
              'Salesforce opportunities','Jira issues','Notion pages','GitHub PRs','Shopify orders',
              'Intercom chats','Airtable rows'])[1 + floor(pg_temp.h(w.i, 64) * 12)::int],
       CASE WHEN w.ts > now() - interval '7 days' OR pg_temp.h(w.i, 65) < 0.85 THEN 'active'
            WHEN pg_temp.h(w.i, 65) < 0.95 THEN 'paused' ELSE 'archived' END,
       (ARRAY['manual','schedule','schedule','webhook','webhook','api','event'])[1 + floor(pg_temp.h(w.i, 66) * 7)::int],
       (ARRAY[60,60,60,60,30,120,300,900])[1 + floor(pg_temp.h(w.i, 67) * 8)::int],
       greatest(w.ts, u.created_at + interval '5 minutes'),
       greatest(w.ts, u.created_at + interval '5 minutes')
         + pg_temp.h(w.i, 68) * (now() - greatest(w.ts, u.created_at + interval '5 minutes'))
FROM (
  SELECT i, age_days, now() - age_days * interval '1 day' AS ts,
         -- index of a user who had signed up by then (inverse of the signup curve above)
         least(nu, 1 + floor(pg_temp.h(i, 62) * greatest(1, floor(nu *
           CASE WHEN age_days >= 30 THEN (90 - age_days) / 60 * 0.88
                ELSE 0.88 + (30 - age_days) / 30 * 0.12 END)))::int) AS user_i
  FROM (SELECT i, pg_temp.cnt('users', 500) AS nu, 0.003 + pg_temp.h(i, 61) * 89.9 AS age_days
        FROM generate_series(1, pg_temp.n(1500)) AS i) g
) w
JOIN _u u ON u.i = w.user_i;

-- Bulk-load trick: drop the secondary indexes of the three big tables, load, then rebuild them
-- from their own definitions (a sorted build is much faster than row-by-row maintenance).
DROP TABLE IF EXISTS pg_temp._idx;
CREATE TEMP TABLE _idx AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid IN ('public.api_requests'::regclass, 'public.workflow_executions'::regclass,
                     'public.error_logs'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT name FROM _idx LOOP
    EXECUTE 'DROP INDEX ' || r.name;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Workflow executions: the last 72 hours, all finished (no pending/running rows at all, so the
-- healthy sandbox never looks stuck).  Generated backwards from finished_at so nothing ends in
-- the future.  Outcomes are stratified: exactly 1 timed_out per 200 and ~1 failed per 40
-- consecutive runs, so no hour looks like an incident.
-- ---------------------------------------------------------------------------------------------
DROP TABLE IF EXISTS pg_temp._wf;
CREATE TEMP TABLE _wf AS
SELECT row_number() OVER (ORDER BY id) AS n, id, tenant_id, user_id, timeout_seconds
FROM public.workflows
WHERE status = 'active' AND created_at < (SELECT t0 FROM _c) - interval '1 hour';
ALTER TABLE _wf ADD PRIMARY KEY (n);
ANALYZE _wf;

INSERT INTO public.workflow_executions (id, workflow_id, tenant_id, user_id, status, attempt, created_at,
                                        started_at, finished_at, duration_ms, error)
SELECT pg_temp.uid('exec:' || x.i), x.workflow_id, x.tenant_id, x.user_id, x.status,
       CASE WHEN pg_temp.h(x.i, 76) < 0.03 THEN 2 WHEN pg_temp.h(x.i, 76) < 0.035 THEN 3 ELSE 1 END,
       x.finished_at - (x.dur + x.queue_ms) * interval '1 millisecond',
       x.finished_at - x.dur * interval '1 millisecond',
       x.finished_at,
       x.dur,
       CASE x.status
         WHEN 'timed_out' THEN 'Execution exceeded timeout of ' || x.timeout_s || 's'
         WHEN 'failed' THEN
           (ARRAY['HTTP 500 from upstream connector "hubspot"',
                  'Rate limited by upstream API (429 Too Many Requests)',
                  'Invalid credentials for connector "slack": token_revoked',
                  'Step 3 ("transform") raised KeyError: ''email''',
                  'Connection reset by peer while calling https://api.zendesk.com',
                  'JSON decode error in step 2 ("fetch"): Expecting value: line 1 column 1',
                  'Output exceeded 5 MB payload limit'])[1 + floor(pg_temp.h(x.i, 77) * 7)::int]
       END
FROM (
  SELECT i, workflow_id, tenant_id, user_id, timeout_s, status, finished_at, queue_ms,
         CASE status
           WHEN 'timed_out' THEN timeout_s * 1000 + 5 + floor(pg_temp.h(i, 78) * 40)::int
           WHEN 'failed' THEN least(timeout_s * 1000 - 1, round(1500 * exp(1.1 * pg_temp.z(i, 79))))::int
           ELSE least(timeout_s * 1000 - 1, round(800 * exp(0.95 * pg_temp.z(i, 79))))::int
         END AS dur
  FROM (
    SELECT g.i, wfo.id AS workflow_id, wfo.tenant_id, wfo.user_id, wfo.timeout_seconds AS timeout_s,
           CASE WHEN g.finished_at > now() - interval '15 minutes'
                  OR g.finished_at < (SELECT t0 FROM _c) + interval '35 minutes' THEN 'succeeded'
                WHEN g.i % 200 = floor(pg_temp.h(g.i / 200, 72) * 200)::int THEN 'timed_out'
                WHEN g.i % 40 = floor(pg_temp.h(g.i / 40, 73) * 40)::int THEN 'failed'
                ELSE 'succeeded' END AS status,
           g.finished_at,
           round(120 * exp(0.8 * pg_temp.z(g.i, 75)))::int AS queue_ms
    FROM (
      SELECT i, 1 + floor(power(pg_temp.h(i, 71), 2) * (SELECT count(*) FROM _wf))::int AS wf_n,
             (SELECT t0 FROM _c) + interval '20 minutes'
               + (i - 1 + pg_temp.h(i, 74)) * (SELECT exec_step FROM _c) - interval '3 seconds' AS finished_at
      FROM generate_series(1, (SELECT nexec FROM _c)) AS i
      OFFSET 0
    ) g
    JOIN _wf wfo ON wfo.n = g.wf_n
  ) s
) x;

-- ---------------------------------------------------------------------------------------------
-- API requests: 72 hours, one every 2 s / scale.  At most one 5xx per block of 331 consecutive
-- requests, placed so two 5xx are always >150 requests apart (~0.3%, never near the 1% alert in
-- any hour or 5-minute window).  ~1% 4xx.  Durations log-normal per endpoint.
-- ---------------------------------------------------------------------------------------------
-- Per-endpoint parameters, indexed by k = 1..10.  Share of traffic: healthz 20%, workflows GET 26%
-- / POST 3%, run 20%, login 12%, signup 0.2%, stripe webhook 0.46% (~600 events at scale 1),
-- billing reconcile 0.24%, profile GET 15% / POST 3%.  Median latency (ms) and log-normal sigma.
INSERT INTO public.api_requests (created_at, method, path, status, duration_ms, user_id, ip, request_id, error)
SELECT r.created_at,
       (ARRAY['GET','GET','POST','POST','POST','POST','POST','POST','GET','POST'])[r.k],
       (ARRAY['/api/healthz','/api/workflows','/api/workflows','/api/workflows/run','/api/auth/login',
              '/api/auth/signup','/api/stripe/webhook','/api/billing/reconcile','/api/profile',
              '/api/profile'])[r.k],
       r.status,
       CASE WHEN r.status = 502 THEN r.dur + 1000 + pg_temp.h(r.i, 91) * 2000
            WHEN r.status = 503 THEN r.dur * 0.2 + 2
            ELSE r.dur END,
       CASE WHEN r.k IN (2, 3, 4, 9, 10)
            -- (an inline array_agg stays an in-memory value; stored in _c it would be TOASTed and
            -- detoasted on every row)
            THEN (SELECT array_agg(id ORDER BY i) FROM _u)[1 + floor(pg_temp.h(r.i, 88) * (SELECT nactive FROM _c))::int] END,
       CASE WHEN r.k = 1 THEN '10.0.0.2'::inet + r.i % 3
            WHEN r.k = 7 THEN '3.18.12.63'::inet + r.i % 4
            WHEN r.k IN (2, 3, 4, 9, 10)   -- the user's own addresses, as their logins in the audit log
            THEN pg_temp.address(1 + floor(pg_temp.h(r.i, 88) * (SELECT nactive FROM _c))::int, pg_temp.h(r.i, 89) < 0.2)
            ELSE ('{203.0.113.1,198.51.100.1,192.0.2.1}'::inet[])[1 + floor(pg_temp.h(r.i, 89) * 3)::int]
                 + floor(pg_temp.h(r.i, 90) * 254)::int END,
       'req_' || lpad(to_hex(hashint8extended(r.i, 93) & 72057594037927935), 14, '0'),
       CASE r.status
         WHEN 400 THEN 'invalid_request: request body failed validation'
         WHEN 401 THEN 'unauthorized: missing or expired access token'
         WHEN 429 THEN 'rate_limited: too many requests'
         WHEN 500 THEN 'internal_error'
         WHEN 502 THEN 'bad_gateway: workflow engine returned an invalid response'
         WHEN 503 THEN 'service_unavailable: database connection pool exhausted'
       END
FROM (
  SELECT g.i, g.k, g.created_at,
         CASE
           -- signups and webhook deliveries always succeed on the healthy sandbox (the signup-success
           -- and webhook-failure checks look at small samples)
           WHEN g.k IN (6, 7) THEN (ARRAY[200,200,201,201,200,201,200,200,200,200])[g.k]
           -- no errors in the first/last 15 minutes, so partial hour buckets never look spiky
           WHEN g.created_at > now() - interval '15 minutes'
             OR g.created_at < (SELECT t0 FROM _c) + interval '15 minutes'
             THEN (ARRAY[200,200,201,201,200,201,200,200,200,200])[g.k]
           WHEN g.i % 331 = 80 + floor(pg_temp.h(g.i / 331, 83) * 170)::int
             THEN (ARRAY[500,500,500,502,503])[1 + floor(pg_temp.h(g.i, 84) * 5)::int]
           WHEN g.k <> 1 AND pg_temp.h(g.i, 85) < 0.0125
             THEN (ARRAY[400,400,401,401,429])[1 + floor(pg_temp.h(g.i, 86) * 5)::int]
           ELSE (ARRAY[200,200,201,201,200,201,200,200,200,200])[g.k]
         END AS status,
         round(1000 * (ARRAY[9.0,58,100,115,135,230,80,260,46,70]::float8[])[g.k]
               * exp((ARRAY[0.35,0.55,0.55,0.60,0.45,0.45,0.50,0.45,0.50,0.50]::float8[])[g.k] * pg_temp.z(g.i, 87)))
           / 1000 AS dur
  FROM (
    SELECT i,
           CASE WHEN c.cycle = 0 THEN c.t0 + (i - 1 + pg_temp.h(i, 81)) * c.req_step
                -- daily cycle: warp uniform time tau (days) by tau - a/2pi (sin 2pi(tau - p) + sin 2pi p), so the
                -- rate is 1 / (1 - a cos 2pi(tau - p)): whole days map onto themselves, busiest at the peak hour
                ELSE c.t0 + interval '1 day' * (d.tau - c.cycle / (2 * pi())
                                                * (sin(2 * pi() * (d.tau - c.peak)) + sin(2 * pi() * c.peak))) END
             AS created_at,
           CASE WHEN up < 0.200  THEN 1 WHEN up < 0.460  THEN 2 WHEN up < 0.490 THEN 3
                WHEN up < 0.690  THEN 4 WHEN up < 0.810  THEN 5 WHEN up < 0.812 THEN 6
                WHEN up < 0.8166 THEN 7 WHEN up < 0.819  THEN 8 WHEN up < 0.970 THEN 9
                ELSE 10 END AS k
    FROM (SELECT i, pg_temp.h(i, 82) AS up, (i - 1 + pg_temp.h(i, 81)) / c.nreq * c.days AS tau
          FROM _c c, generate_series(1, c.nreq) AS i OFFSET 0) d, _c c
    OFFSET 0  -- optimisation fence: compute k once per row instead of inlining it everywhere
  ) g
  OFFSET 0
) r;

-- One error log per 5xx request, plus routine worker warnings.
INSERT INTO public.error_logs (created_at, level, source, message, path, user_id, request_id, context)
SELECT created_at, 'error', 'api',
       CASE status
         WHEN 500 THEN (ARRAY['Unhandled exception: KeyError ''tenant_id'' in request handler',
                              'Unhandled exception: psycopg.errors.QueryCanceled: canceling statement due to statement timeout',
                              'Unhandled exception: TypeError: NoneType object is not subscriptable'])
                       [1 + floor(pg_temp.h(i, 92) * 3)::int]
         WHEN 502 THEN 'Upstream workflow engine returned an invalid response'
         ELSE 'Service temporarily unavailable: database connection pool exhausted'
       END,
       path, user_id, request_id,
       jsonb_build_object('status', status, 'method', method, 'duration_ms', round(duration_ms::numeric, 1))
FROM public.api_requests AS r(i)
WHERE status >= 500
ORDER BY i;

INSERT INTO public.error_logs (created_at, level, source, message, path, user_id, request_id, context)
SELECT now() - (pg_temp.h(i, 101) * pg_temp.knob('hours', 72)) * interval '1 hour', 'warning', 'worker',
       (ARRAY['Retrying execution after transient connector error (attempt 2/3)',
              'Slow step detected: "fetch" took longer than 5s',
              'Queue lag above 2s on queue "default"',
              'Connector token refreshed after 401 from upstream',
              'Execution output truncated to 1 MB for logging'])[1 + floor(pg_temp.h(i, 102) * 5)::int],
       NULL, NULL, NULL,
       jsonb_build_object('worker', 'worker-' || (1 + i % 4), 'queue', 'default')
FROM generate_series(1, pg_temp.cnt('warnings', 300)) AS i
ORDER BY 1;

DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT def FROM _idx LOOP
    EXECUTE r.def;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Stripe events: one per successful webhook delivery above, all processed within seconds.
-- ---------------------------------------------------------------------------------------------
DROP TABLE IF EXISTS pg_temp._paid;
CREATE TEMP TABLE _paid AS
SELECT row_number() OVER (ORDER BY stripe_customer_id) AS n, stripe_customer_id AS cus,
       stripe_subscription_id AS sub, tier, status
FROM public.subscription_tiers
WHERE stripe_customer_id IS NOT NULL;

INSERT INTO public.stripe_events (id, type, created_at, received_at, processed_at, status, error, livemode, payload)
SELECT e.evt, e.type, e.created, e.received,
       e.received + (0.05 + 2.5 * pg_temp.h(e.i, 113)) * interval '1 second',
       'processed', NULL, false,
       jsonb_build_object(
         'id', e.evt, 'object', 'event', 'api_version', '2024-06-20', 'type', e.type, 'livemode', false,
         'created', floor(extract(epoch FROM e.created))::bigint, 'pending_webhooks', 1,
         'data', jsonb_build_object('object',
           CASE
             WHEN e.type LIKE 'customer.subscription.%' THEN jsonb_build_object(
               'id', p.sub, 'object', 'subscription', 'customer', p.cus, 'status', p.status,
               'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
                 'price', jsonb_build_object('id', 'price_' || p.tier || '_monthly', 'lookup_key', p.tier)))))
             WHEN e.type LIKE 'invoice.%' THEN jsonb_build_object(
               'id', 'in_' || substr(md5('in:' || e.i), 1, 24), 'object', 'invoice', 'customer', p.cus,
               'subscription', p.sub, 'currency', 'usd',
               'amount_due', CASE p.tier WHEN 'pro' THEN 4900 ELSE 49900 END,
               'amount_paid', CASE WHEN e.type = 'invoice.paid' THEN CASE p.tier WHEN 'pro' THEN 4900 ELSE 49900 END ELSE 0 END,
               'status', CASE WHEN e.type = 'invoice.paid' THEN 'paid' ELSE 'open' END,
               'attempt_count', CASE WHEN e.type = 'invoice.paid' THEN 1 ELSE 1 + floor(pg_temp.h(e.i, 114) * 2)::int END)
             ELSE jsonb_build_object(
               'id', 'cs_test_' || substr(md5('cs:' || e.i), 1, 24), 'object', 'checkout.session',
               'customer', p.cus, 'subscription', p.sub, 'mode', 'subscription',
               'payment_status', 'paid', 'status', 'complete')
           END))
FROM (
  SELECT r.i, 'evt_' || substr(md5('evt:' || r.i), 1, 24) AS evt,
         CASE WHEN pg_temp.h(r.i, 111) < 0.32 THEN 'customer.subscription.updated'
              WHEN pg_temp.h(r.i, 111) < 0.72 THEN 'invoice.paid'
              WHEN pg_temp.h(r.i, 111) < 0.84 THEN 'customer.subscription.created'
              WHEN pg_temp.h(r.i, 111) < 0.96 THEN 'checkout.session.completed'
              ELSE 'invoice.payment_failed' END AS type,
         r.created_at - r.duration_ms * interval '1 millisecond' AS received,
         r.created_at - r.duration_ms * interval '1 millisecond'
           - (0.3 + 2 * pg_temp.h(r.i, 112)) * interval '1 second' AS created,
         1 + floor(pg_temp.h(r.i, 115) * (SELECT count(*) FROM _paid))::int AS paid_n
  FROM (SELECT id AS i, created_at, duration_ms FROM public.api_requests
        WHERE path = '/api/stripe/webhook' AND status = 200) r
) e
JOIN _paid p ON p.n = e.paid_n;

-- ---------------------------------------------------------------------------------------------
-- Rate-limit windows: per-minute counters for the last hour; none currently blocked (a few
-- keys were briefly blocked earlier and have since expired).
-- ---------------------------------------------------------------------------------------------
INSERT INTO public.rate_limits (key, window_start, count, "limit", blocked_until)
SELECT key, ws,
       CASE WHEN blocked THEN lim + 1 + floor(pg_temp.h(k * 100 + w, 124) * 20)::int
            ELSE 1 + floor(pg_temp.h(k * 100 + w, 125) * lim * 0.7)::int END,
       lim,
       CASE WHEN blocked THEN ws + interval '1 minute' END
FROM (
  SELECT k, w,
         CASE WHEN k % 3 = 0 THEN 'ip:' || ((ARRAY['203.0.113.','198.51.100.','192.0.2.'])[1 + floor(pg_temp.h(k, 127) * 3)::int] || (1 + k % 254))
              ELSE 'user:' || pg_temp.uid('user:' || (1 + floor(pg_temp.h(k, 121) * pg_temp.cnt('users', 500))::int)) END AS key,
         date_trunc('minute', now()) - (w + 2) * interval '1 minute' AS ws,
         (ARRAY[60,60,60,600,600,6000])[1 + floor(pg_temp.h(k, 122) * 6)::int] AS lim,
         pg_temp.h(k * 100 + w, 126) < 0.03 AS blocked
  FROM generate_series(1, pg_temp.n(50)) AS k, generate_series(0, 59) AS w
  WHERE pg_temp.h(k * 100 + w, 123) < 0.10
) s
ON CONFLICT (key, window_start) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- API keys: ~1.5 per tenant, a few revoked.
-- ---------------------------------------------------------------------------------------------
INSERT INTO public.api_keys (id, tenant_id, name, prefix, key_hash, created_at, last_used_at, revoked_at)
SELECT pg_temp.uid('apikey:' || k.i), t.id,
       (ARRAY['Production','Staging','CI pipeline','Zapier integration','Local development','Data warehouse sync'])
         [1 + floor(pg_temp.h(k.i, 131) * 6)::int],
       'aias_live_' || substr(md5('prefix:' || k.i), 1, 8),
       encode(sha256(convert_to('aias_live_secret:' || k.i, 'UTF8')), 'hex'),
       k.created,
       CASE WHEN pg_temp.h(k.i, 133) < 0.9 THEN greatest(k.created, now() - pg_temp.h(k.i, 134) * interval '2 days') END,
       CASE WHEN pg_temp.h(k.i, 135) < 0.07 THEN k.created + (now() - k.created) * pg_temp.h(k.i, 136) END
FROM (
  SELECT g.i, pg_temp.uid('tenant:' || (1 + (g.i - 1) % c.nt)) AS tenant_id, pg_temp.h(g.i, 132) AS f
  FROM (SELECT pg_temp.cnt('tenants', 40) AS nt, pg_temp.n(60) AS nk) c
  CROSS JOIN LATERAL generate_series(1, c.nk) AS g(i)
) k0
JOIN public.tenants t ON t.id = k0.tenant_id
CROSS JOIN LATERAL (SELECT k0.i, t.created_at + (now() - t.created_at) * k0.f AS created) k;

DROP TABLE IF EXISTS pg_temp._c;
DROP TABLE IF EXISTS pg_temp._idx;
DROP TABLE IF EXISTS pg_temp._paid;
DROP TABLE IF EXISTS pg_temp._wf;
DROP TABLE IF EXISTS pg_temp._u;
DROP FUNCTION IF EXISTS pg_temp.uid(text);
DROP FUNCTION IF EXISTS pg_temp.z(bigint, bigint);
DROP FUNCTION IF EXISTS pg_temp.h(bigint, bigint);
DROP FUNCTION IF EXISTS pg_temp.n(numeric);
DROP FUNCTION IF EXISTS pg_temp.cnt(text, numeric);
DROP FUNCTION IF EXISTS pg_temp.knob(text, float8);
DROP FUNCTION IF EXISTS pg_temp.scale();

ANALYZE;
