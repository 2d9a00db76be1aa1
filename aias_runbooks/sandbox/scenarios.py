"""Named fault injections, each made real: a slow API really is slow, a down API really refuses connections."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .platform.database.stats import FLUSH_STATS_SQL


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    api: str = "normal"      # normal | slow | down | db-down
    webhook: str = "normal"  # the API's /api/stripe/webhook: normal | secret-mismatch | down
    stripe_activity: str | None = None  # billing.ACTIVITIES: Stripe changes delivered as webhooks; undone at the end
    signup_activity: str | None = None  # signups.ACTIVITIES: signups through the API; undone at the end
    bad_release: str | None = None  # releases.KINDS: a faulty deployment live for 12 minutes; undone at the end
    workflows: str | None = None  # workflows.FAULTS (workers-down also stops the worker); undone at the end
    backups: str | None = None  # "stale": the newest backup is 3 days old (sandbox/backups.py); undone at the end
    migrations: str | None = None  # "drift": a hotfix row without a file, a file never applied (migration_files.py)
    breach: bool = False     # breach.make_activity: stolen credentials used through the API; undone at the end
    rls_user: bool = False   # rls_user.make_activity: a member and a workflows policy that hides their data; undone
    metric_history: str | None = None  # metric_history.KINDS: minutes of requests written as history; undone at the end
    fault: str | None = None  # a workloads.py kind that holds the fault while the scenario lasts
    setup_sql: str = ""      # run once when the scenario starts; RESET_SQL undoes it
    dirties_stats: bool = False  # leaves evidence in the statistics: reset them when the scenario ends
    diagnosed_by: str = ""   # the runbook and finding codes that must catch it


# Run before every scenario (after the previous fault helper is stopped): back to the healthy schema.
RESET_SQL = """
CREATE INDEX IF NOT EXISTS workflow_executions_workflow_id_idx ON public.workflow_executions (workflow_id);
DROP TABLE IF EXISTS public.debug_webhook_payloads, public.feature_flags, public.usage_reports;
DROP TABLE IF EXISTS public.import_staging;
DO $$
BEGIN
  IF to_regclass('sandbox_scenario.removed_members') IS NOT NULL THEN
    INSERT INTO public.tenant_members SELECT * FROM sandbox_scenario.removed_members ON CONFLICT DO NOTHING;
    DROP TABLE sandbox_scenario.removed_members;
  END IF;
END
$$;
"""
RLS_GAP_SQL = """
CREATE TABLE public.debug_webhook_payloads (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz DEFAULT now(), payload jsonb);
CREATE TABLE public.feature_flags (key text PRIMARY KEY, enabled boolean NOT NULL DEFAULT false);
ALTER TABLE public.feature_flags ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.debug_webhook_payloads, public.feature_flags TO anon, authenticated;
-- A migration that copied the monitoring role's read policy and nothing else: the monitor reads every row, the
-- app's users (authenticated) none.
CREATE TABLE public.usage_reports (id bigint PRIMARY KEY, tenant_id uuid, summary text);
ALTER TABLE public.usage_reports ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.usage_reports TO authenticated, aias_monitor;
CREATE POLICY usage_reports_monitor_read ON public.usage_reports FOR SELECT TO aias_monitor USING (true);
"""

# A paying member removed from the workspace their subscription pays for (an admin's clean-up, a bad invitation
# flow): the first such member by email; the row is kept aside (outside the app's schemas) so RESET_SQL puts it back.
PAYING_MEMBER_REMOVED_SQL = """
CREATE SCHEMA IF NOT EXISTS sandbox_scenario;
CREATE TABLE sandbox_scenario.removed_members AS
SELECT m.* FROM public.tenant_members m
JOIN public.subscription_tiers s ON s.user_id = m.user_id AND s.tenant_id = m.tenant_id
JOIN public.profiles p ON p.id = m.user_id
WHERE s.tier <> 'free' AND s.status = 'active' AND m.role = 'member'
ORDER BY p.email LIMIT 1;
DELETE FROM public.tenant_members m USING sandbox_scenario.removed_members r
WHERE m.tenant_id = r.tenant_id AND m.user_id = r.user_id;
"""

# A table loaded with autovacuum off (a common bulk-load trick) and never switched back: 3000 dead rows against
# a trigger point of 50 + 0.2 x 1000 = 250. The statistics are flushed before the session ends, so they show at once.
AUTOVACUUM_DISABLED_SQL = """
CREATE TABLE public.import_staging (id bigint PRIMARY KEY, payload text, imported boolean NOT NULL DEFAULT false)
    WITH (autovacuum_enabled = false);
ALTER TABLE public.import_staging ENABLE ROW LEVEL SECURITY;
CREATE POLICY import_staging_service ON public.import_staging TO service_role USING (true);
INSERT INTO public.import_staging (id, payload) SELECT g, md5(g::text) FROM generate_series(1, 1000) AS g;
ANALYZE public.import_staging;
UPDATE public.import_staging SET imported = true;
UPDATE public.import_staging SET payload = payload || '.';
UPDATE public.import_staging SET imported = false;
""" + FLUSH_STATS_SQL + ";"

SCENARIOS = {s.name: s for s in [
    Scenario("healthy", "Everything normal: no runbook should report WARNING or CRITICAL."),
    Scenario("api-slow", "A quarter of API requests take 1.2 s: /api/healthz P95 is above 1000 ms.",
             api="slow", diagnosed_by="health-check: API_LATENCY_P95_HIGH"),
    Scenario("api-down", "The API process is stopped: connections to it are refused.",
             api="down", diagnosed_by="health-check: API_DOWN; incident-system-down: SYSTEM_DOWN (CRITICAL), API_DOWN; "
                          "monitoring: MONITOR_HEALTH_CHECK_FAILED (CRITICAL)"),
    Scenario("api-db-down", "The API runs but its database check hangs: every /api/healthz waits its 2 s "
             "timeout and answers 503.", api="db-down",
             diagnosed_by="health-check: API_UNHEALTHY (CRITICAL); incident-system-down: SYSTEM_DOWN (CRITICAL)"),
    Scenario("autovacuum-disabled", "A bulk-import table had autovacuum turned off for a load and never turned "
             "back on: its dead rows are far past the trigger point.", setup_sql=AUTOVACUUM_DISABLED_SQL,
             diagnosed_by="database-health: DB_VACUUM_LAG (autovacuum disabled)"),
    Scenario("db-connection-leak", "A worker leaked 8 sessions idle in transaction.", fault="leak",
             diagnosed_by="database-connection-errors: DB_CONNECTION_LEAK"),
    Scenario("db-pool-exhaustion", "Connections opened until the server refuses: 'too many clients already'.",
             fault="exhaust", diagnosed_by="database-connection-errors: DB_POOL_SATURATED"),
    Scenario("blocking-locks", "An open transaction holds a row; an UPDATE, a migration and reads queue behind it.",
             fault="block", diagnosed_by="database-connection-errors: DB_BLOCKING_LOCKS"),
    Scenario("advisory-lock-blocker", "An idle session (not in a transaction) holds a session-level advisory lock "
             "(pg_advisory_lock(42)) it never releases; another session waits for it.", fault="advisory-block",
             diagnosed_by="database-connection-errors: DB_BLOCKING_LOCKS (idle root blocker: terminate)"),
    Scenario("slow-queries", "The index on workflow_executions(workflow_id) is gone and a dashboard query "
             "runs in a loop.", fault="slow-workload", dirties_stats=True,
             diagnosed_by="database-connection-errors: DB_SLOW_QUERY; database-health: DB_SEQ_SCAN_HOT_TABLE"),
    Scenario("rls-gap", "A table without RLS, a table with RLS but no policy, and one whose only policy is the "
             "monitoring role's appeared in public.",
             setup_sql=RLS_GAP_SQL, diagnosed_by="database-health: RLS_DISABLED, RLS_NO_POLICY"),
    Scenario("webhook-secret-mismatch", "The API's webhook secret was rotated but Stripe still signs with the old "
             "one: three users paid for Pro, every delivery failed verification, none was upgraded.",
             webhook="secret-mismatch", stripe_activity="upgrades",
             diagnosed_by="stripe-webhook-failures: WEBHOOK_SIGNATURE_REJECTED, WEBHOOK_EVENTS_UNPROCESSED, "
                          "WEBHOOK_SUCCESS_RATE_LOW, SUBSCRIPTION_MISMATCH; "
                          "monitoring: MONITOR_WEBHOOK_FAILURES (CRITICAL)"),
    Scenario("webhook-endpoint-down", "/api/stripe/webhook answers 500 to everything: three users paid for Pro "
             "and were not upgraded.", webhook="down", stripe_activity="upgrades",
             diagnosed_by="stripe-webhook-failures: WEBHOOK_ENDPOINT_UNREACHABLE, WEBHOOK_EVENTS_UNPROCESSED, "
                          "WEBHOOK_SUCCESS_RATE_LOW, SUBSCRIPTION_MISMATCH; "
                          "monitoring: MONITOR_WEBHOOK_FAILURES (CRITICAL)"),
    Scenario("payment-failures", "Three paying customers' cards are declined on renewal: their invoices failed "
             "and their subscriptions are past due.", stripe_activity="declines",
             diagnosed_by="incident-payment-issues: PAYMENTS_FAILING"),
    Scenario("error-spike-after-deploy", "A deployment went live 12 minutes ago with a bug on /api/workflows: a "
             "third of those requests fail with a TypeError.", bad_release="live",
             diagnosed_by="high-error-rate: ERROR_SPIKE_AFTER_DEPLOY, ERROR_RATE_HIGH (CRITICAL), "
                          "ERROR_PATTERN_DOMINANT; monitoring: MONITOR_ERROR_RATE (CRITICAL)"),
    Scenario("error-spike-under-newer-deploy", "A deployment went live 12 minutes ago with a bug on /api/workflows "
             "(a third of those requests fail with a TypeError); a newer deployment built on it went live 4 minutes "
             "ago and still carries the bug.", bad_release="under-newer",
             diagnosed_by="high-error-rate: ERROR_SPIKE_AFTER_DEPLOY, ERROR_RATE_HIGH (CRITICAL), "
                          "ERROR_PATTERN_DOMINANT; monitoring: MONITOR_ERROR_RATE (CRITICAL)"),
    Scenario("signup-rate-limited", "One client (ip:203.0.113.7) signed up 20 times in a minute: after 5 it is "
             "blocked for 15 minutes and every signup from it fails with 429.", signup_activity="burst",
             diagnosed_by="signup-failures: SIGNUP_RATE_LIMITED, SIGNUP_SUCCESS_RATE_LOW"),
    Scenario("email-domain-unverified", "The sending domain's DNS records were removed (Resend: failed): "
             "signups succeed but no welcome email is sent.", signup_activity="unverified-domain",
             diagnosed_by="signup-failures: EMAIL_DOMAIN_UNVERIFIED, EMAIL_DELIVERY_FAILING"),
    Scenario("workers-down", "The workflow worker stopped 20 minutes ago: 40 executions queued since are still "
             "pending.", workflows="workers-down",
             diagnosed_by="workflows-not-executing: WORKFLOWS_STUCK_PENDING (CRITICAL), WORKER_DOWN (CRITICAL)"),
    Scenario("external-api-outage", "HubSpot's API answers 503: every workflow calling it has failed for the last "
             "5 minutes, and still fails.", workflows="external-api-outage",
             diagnosed_by="workflows-not-executing: EXTERNAL_API_DOWN (CRITICAL)"),
    Scenario("plan-limit-reached", "One tenant on the free plan ran its 100 executions today: its workflows stop "
             "until tomorrow.", workflows="plan-limit-reached",
             diagnosed_by="workflows-not-executing: PLAN_LIMIT_REACHED"),
    Scenario("backup-stale", "Backups stopped three days ago: the newest in the backup folder was taken then.",
             backups="stale", diagnosed_by="database-backup: BACKUP_STALE (CRITICAL); maintenance-window: "
             "MAINTENANCE_BACKUP_MISSING (CRITICAL), MAINTENANCE_NOT_READY (CRITICAL)"),
    Scenario("migration-drift", "A hotfix was run from the dashboard and recorded as migration 20250115093000 with "
             "no file in the repository, and the repository's migration 20250201000000 was never applied.",
             migrations="drift", diagnosed_by="migrations: MIGRATION_DRIFT, MIGRATIONS_PENDING"),
    Scenario("credential-misuse", "Stolen credentials in use: a failed-login burst from one new address against "
             "four accounts ends in a login as one of them; a revoked API key and its live successor are presented "
             "from an unknown address; the service-role token is used from an unknown origin.", breach=True,
             diagnosed_by="incident-data-breach: SUSPICIOUS_LOGINS (CRITICAL), CREDENTIAL_MISUSE (CRITICAL)"),
    Scenario("paying-member-removed", "A member who pays for their workspace's Pro plan was removed from it: they "
             "pay and see nothing (sandbox_scenario.removed_members names them).",
             setup_sql=PAYING_MEMBER_REMOVED_SQL),
    Scenario("rls-blocks-user", "A policy change made workflows' SELECT policy match only the workflows a user "
             "created, not their tenants': rls.member@example.test, who just joined a tenant as a member, sees none of "
             "its workflows, and every other member misses some (rls-user.json in the sandbox folder names the user).",
             rls_user=True,
             diagnosed_by="user-support: RLS_BLOCKS_USER (CRITICAL)"),
    Scenario("error-blip", "Two minutes ago, one minute of server errors (about 14 % of that minute's requests "
             "failed with a TypeError), then normal: over 1 % for one minute is not the playbook's alert.",
             metric_history="error-blip"),
    Scenario("slow-responses", "For the last 8 minutes every 4th request took 1.2-1.5 s: the response-time P95 "
             "has been over 1000 ms each minute.", metric_history="slow-responses",
             diagnosed_by="monitoring: MONITOR_RESPONSE_P95 (CRITICAL)"),
    Scenario("slow-database", "For the last 8 minutes every health check's SELECT 1 took 600-900 ms: the database "
             "latency P95 has been over 500 ms each minute (and responses over their 500 ms target).",
             metric_history="slow-database", diagnosed_by="monitoring: MONITOR_DB_LATENCY (CRITICAL)"),
    Scenario("webhook-processing-fails", "A release of the billing webhook handler writes each subscription event "
             "as a new plan row (its upsert lost ON CONFLICT): three users paid for Pro, their events were verified "
             "and recorded, then failed on the unique constraint subscription_tiers_user_id_key; none was upgraded.",
             webhook="insert-subscription", stripe_activity="upgrades",
             diagnosed_by="stripe-webhook-failures: WEBHOOK_EVENTS_UNPROCESSED (CRITICAL), WEBHOOK_SUCCESS_RATE_LOW, "
                          "SUBSCRIPTION_MISMATCH"),
    Scenario("email-bounces-one-domain", "One customer company's mail server (globex.example) rejects our mail: "
             "eight of its people signed up, and each welcome email bounced; mail to everyone else is delivered.",
             signup_activity="bounces-one-domain",
             diagnosed_by="signup-failures: EMAIL_DELIVERY_FAILING (WARNING)"),
    Scenario("external-api-slow", "OpenAI's API answers, but after 3 s, longer than the worker waits (2 s): for "
             "the last 20 minutes every workflow calling it has timed out, and still does.",
             workflows="external-api-slow",
             diagnosed_by="workflows-not-executing: EXTERNAL_API_SLOW (WARNING), WORKFLOW_TIMEOUTS"),
]}


def get(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise UsageError(f"unknown scenario '{name}'; valid: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]
