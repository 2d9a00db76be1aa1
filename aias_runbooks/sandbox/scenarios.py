"""The named scenarios `sandbox up --scenario` puts the platform in, as data: each is a description, the faults that
make it real (faults/, one module each) and what must catch it: `expected` is {runbook: {finding code: severity}},
None meaning WARNING or CRITICAL. Adding a scenario is one fault module (if its fault is new) and one row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .faults.api_modes import ApiMode
from .faults.autovacuum_disabled import AUTOVACUUM_DISABLED
from .faults.bad_release import BadRelease
from .faults.base import Fault
from .faults.broken_indexes import BrokenIndexes
from .faults.credential_misuse import CredentialMisuse
from .faults.database_sessions import HeldSessions
from .faults.metric_history import MetricHistory
from .faults.migration_drift import MigrationDrift
from .faults.paying_member_removed import PAYING_MEMBER_REMOVED
from .faults.replication_slot import InactiveSlot
from .faults.rls_blocks_user import RlsBlocksUser
from .faults.rls_gap import RLS_GAP
from .faults.sequence_near_max import SEQUENCE_NEAR_MAX
from .faults.signup_activity import SignupActivity
from .faults.stale_backup import StaleBackup
from .faults.stripe_activity import StripeActivity
from .faults.table_bloat import TABLE_BLOAT
from .faults.webhook_modes import WebhookMode
from .faults.workflow_faults import WorkflowFault
from .faults.xid_age import XidAge

NORMAL = {"api": "normal", "webhook": "normal"}   # the sandbox API's modes (scenario.json) unless a fault switches one


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    faults: tuple[Fault, ...] = ()
    expected: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def switches(self) -> dict[str, str]:
        """scenario.json's content: the name, and the API's modes as the faults switch them."""
        modes = dict(NORMAL)
        for fault in self.faults:
            modes |= getattr(fault, "switches", {})
        return {"name": self.name} | modes


SCENARIOS = {s.name: s for s in [
    Scenario("healthy", "Everything normal: no runbook should report WARNING or CRITICAL."),
    Scenario("api-slow", "A quarter of API requests take 1.2 s: /api/healthz P95 is above 1000 ms.",
             faults=(ApiMode("slow"),),
             expected={"health-check": {"API_LATENCY_P95_HIGH": None}}),
    Scenario("api-down", "The API process is stopped: connections to it are refused.",
             faults=(ApiMode("down"),),
             expected={"health-check": {"API_DOWN": None},
                       "incident-system-down": {"SYSTEM_DOWN": "CRITICAL", "API_DOWN": None},
                       "monitoring": {"MONITOR_HEALTH_CHECK_FAILED": "CRITICAL"}}),
    Scenario("api-db-down", "The API runs but its database check hangs: every /api/healthz waits its 2 s timeout and "
             "answers 503.",
             faults=(ApiMode("db-down"),),
             expected={"health-check": {"API_UNHEALTHY": "CRITICAL"},
                       "incident-system-down": {"SYSTEM_DOWN": "CRITICAL"}}),
    Scenario("autovacuum-disabled", "A bulk-import table had autovacuum turned off for a load and never turned back "
             "on: its dead rows are far past the trigger point.",
             faults=(AUTOVACUUM_DISABLED,),
             expected={"database-health": {"DB_VACUUM_LAG": None}}),
    Scenario("replication-slot-inactive", "A logical replication slot (analytics_sync) whose consumer was switched "
             "off without dropping it: it retains about 50 MB of WAL, and more with every write, until the disk is "
             "full.",
             faults=(InactiveSlot(),),
             expected={"database-health": {"DB_REPLICATION_SLOT_INACTIVE": "WARNING"}}),
    Scenario("sequence-near-max", "public.invoice_imports' integer id is fed by a bigint sequence now at "
             "2,000,000,003: 93 % of what the column holds (2^31-1); inserts fail once it is reached.",
             faults=(SEQUENCE_NEAR_MAX,),
             expected={"database-health": {"DB_SEQUENCE_NEAR_MAX": "CRITICAL"}}),
    Scenario("broken-indexes", "A failed CREATE UNIQUE INDEX CONCURRENTLY left public.workflows_name_key invalid, "
             "and public.api_keys_tenant_idx repeats public.api_keys_tenant_id_idx.",
             faults=(BrokenIndexes(),),
             expected={"database-health": {"DB_INDEX_INVALID": "WARNING", "DB_INDEX_DUPLICATE": "WARNING"}}),
    Scenario("xid-wraparound", "The archive table public.events_archive_2024 is 60,000 transactions past its last "
             "freeze: 60 % of its autovacuum_freeze_max_age. The sandbox lowers that table's own setting to "
             "100,000 (the least PostgreSQL takes; a server's default is 200 million) and consumes 60,000 "
             "transaction IDs, so the age is reached in seconds; no other table's setting changes.",
             faults=(XidAge(),),
             expected={"database-health": {"DB_XID_WRAPAROUND": "WARNING"}}),
    Scenario("table-bloat", "A purge deleted 80 % of public.usage_samples (1.5 M fixed-width rows, about 100 MB) "
             "with autovacuum switched off on it, then analyzed it: its live rows need a fifth of its pages and "
             "its primary key still holds an entry for every row it had.",
             faults=(TABLE_BLOAT,),
             expected={"database-health": {"DB_TABLE_BLOAT": "WARNING", "DB_INDEX_BLOAT": "WARNING"}}),
    Scenario("db-connection-leak", "A worker leaked 8 sessions idle in transaction.",
             faults=(HeldSessions("leak"),),
             expected={"database-connection-errors": {"DB_CONNECTION_LEAK": None}}),
    Scenario("db-pool-exhaustion", "Connections opened until the server refuses: 'too many clients already'.",
             faults=(HeldSessions("exhaust"),),
             expected={"database-connection-errors": {"DB_POOL_SATURATED": None}}),
    Scenario("blocking-locks", "An open transaction holds a row; an UPDATE, a migration and reads queue behind it.",
             faults=(HeldSessions("block"),),
             expected={"database-connection-errors": {"DB_BLOCKING_LOCKS": None}}),
    Scenario("advisory-lock-blocker", "An idle session (not in a transaction) holds a session-level advisory lock "
             "(pg_advisory_lock(42)) it never releases; another session waits for it.",
             faults=(HeldSessions("advisory-block"),),
             expected={"database-connection-errors": {"DB_BLOCKING_LOCKS": None}}),
    Scenario("slow-queries", "The index on workflow_executions(workflow_id) is gone and a dashboard query runs in a "
             "loop.",
             faults=(HeldSessions("slow-workload"),),
             expected={"database-connection-errors": {"DB_SLOW_QUERY": None},
                       "database-health": {"DB_SEQ_SCAN_HOT_TABLE": None}}),
    Scenario("rls-gap", "A table without RLS, a table with RLS but no policy, and one whose only policy is the "
             "monitoring role's appeared in public.",
             faults=(RLS_GAP,),
             expected={"database-health": {"RLS_DISABLED": None, "RLS_NO_POLICY": None}}),
    Scenario("webhook-secret-mismatch", "The API's webhook secret was rotated but Stripe still signs with the old "
             "one: three users paid for Pro, every delivery failed verification, none was upgraded.",
             faults=(WebhookMode("secret-mismatch"), StripeActivity("upgrades")),
             expected={"stripe-webhook-failures": {"WEBHOOK_SIGNATURE_REJECTED": None,
                                                  "WEBHOOK_EVENTS_UNPROCESSED": None,
                                                  "WEBHOOK_SUCCESS_RATE_LOW": None, "SUBSCRIPTION_MISMATCH": None},
                       "monitoring": {"MONITOR_WEBHOOK_FAILURES": "CRITICAL"}}),
    Scenario("webhook-endpoint-down", "/api/stripe/webhook answers 500 to everything: three users paid for Pro and "
             "were not upgraded.",
             faults=(WebhookMode("down"), StripeActivity("upgrades")),
             expected={"stripe-webhook-failures": {"WEBHOOK_ENDPOINT_UNREACHABLE": None,
                                                  "WEBHOOK_EVENTS_UNPROCESSED": None,
                                                  "WEBHOOK_SUCCESS_RATE_LOW": None, "SUBSCRIPTION_MISMATCH": None},
                       "monitoring": {"MONITOR_WEBHOOK_FAILURES": "CRITICAL"}}),
    Scenario("payment-failures", "Three paying customers' cards are declined on renewal: their invoices failed and "
             "their subscriptions are past due.",
             faults=(StripeActivity("declines"),),
             expected={"incident-payment-issues": {"PAYMENTS_FAILING": None}}),
    Scenario("error-spike-after-deploy", "A deployment went live 12 minutes ago with a bug on /api/workflows: a "
             "third of those requests fail with a TypeError.",
             faults=(BadRelease("live"),),
             expected={"high-error-rate": {"ERROR_SPIKE_AFTER_DEPLOY": None, "ERROR_RATE_HIGH": "CRITICAL",
                                          "ERROR_PATTERN_DOMINANT": None},
                       "monitoring": {"MONITOR_ERROR_RATE": "CRITICAL"}}),
    Scenario("error-spike-under-newer-deploy", "A deployment went live 12 minutes ago with a bug on /api/workflows "
             "(a third of those requests fail with a TypeError); a newer deployment built on it went live 4 minutes "
             "ago and still carries the bug.",
             faults=(BadRelease("under-newer"),),
             expected={"high-error-rate": {"ERROR_SPIKE_AFTER_DEPLOY": None, "ERROR_RATE_HIGH": "CRITICAL",
                                          "ERROR_PATTERN_DOMINANT": None},
                       "monitoring": {"MONITOR_ERROR_RATE": "CRITICAL"}}),
    Scenario("signup-rate-limited", "One client (ip:203.0.113.7) signed up 20 times in a minute: after 5 it is "
             "blocked for 15 minutes and every signup from it fails with 429.",
             faults=(SignupActivity("burst"),),
             expected={"signup-failures": {"SIGNUP_RATE_LIMITED": None, "SIGNUP_SUCCESS_RATE_LOW": None}}),
    Scenario("email-domain-unverified", "The sending domain's DNS records were removed (Resend: failed): signups "
             "succeed but no welcome email is sent.",
             faults=(SignupActivity("unverified-domain"),),
             expected={"signup-failures": {"EMAIL_DOMAIN_UNVERIFIED": None, "EMAIL_DELIVERY_FAILING": None}}),
    Scenario("workers-down", "The workflow worker stopped 20 minutes ago: 40 executions queued since are still "
             "pending.",
             faults=(WorkflowFault("workers-down"),),
             expected={"workflows-not-executing": {"WORKFLOWS_STUCK_PENDING": "CRITICAL", "WORKER_DOWN": "CRITICAL"}}),
    Scenario("external-api-outage", "HubSpot's API answers 503: every workflow calling it has failed for the last 5 "
             "minutes, and still fails.",
             faults=(WorkflowFault("external-api-outage"),),
             expected={"workflows-not-executing": {"EXTERNAL_API_DOWN": "CRITICAL"}}),
    Scenario("plan-limit-reached", "One tenant on the free plan ran its 100 executions today: its workflows stop "
             "until tomorrow.",
             faults=(WorkflowFault("plan-limit-reached"),),
             expected={"workflows-not-executing": {"PLAN_LIMIT_REACHED": None}}),
    Scenario("backup-stale", "Backups stopped three days ago: the newest in the backup folder was taken then.",
             faults=(StaleBackup(),),
             expected={"database-backup": {"BACKUP_STALE": "CRITICAL"},
                       "maintenance-window": {"MAINTENANCE_BACKUP_MISSING": "CRITICAL",
                                                           "MAINTENANCE_NOT_READY": "CRITICAL"}}),
    Scenario("migration-drift", "A hotfix was run from the dashboard and recorded as migration 20250115093000 with "
             "no file in the repository, and the repository's migration 20250201000000 was never applied.",
             faults=(MigrationDrift(),),
             expected={"migrations": {"MIGRATION_DRIFT": None, "MIGRATIONS_PENDING": None}}),
    Scenario("credential-misuse", "Stolen credentials in use: a failed-login burst from one new address against four "
             "accounts ends in a login as one of them; a revoked API key and its live successor are presented from "
             "an unknown address; the service-role token is used from an unknown origin.",
             faults=(CredentialMisuse(),),
             expected={"incident-data-breach": {"SUSPICIOUS_LOGINS": "CRITICAL", "CREDENTIAL_MISUSE": "CRITICAL"}}),
    Scenario("paying-member-removed", "A member who pays for their workspace's Pro plan was removed from it: they "
             "pay and see nothing (sandbox_scenario.removed_members names them).",
             faults=(PAYING_MEMBER_REMOVED,)),
    Scenario("rls-blocks-user", "A policy change made workflows' SELECT policy match only the workflows a user "
             "created, not their tenants': rls.member@example.test, who just joined a tenant as a member, sees none "
             "of its workflows, and every other member misses some (rls-user.json in the sandbox folder names the "
             "user).",
             faults=(RlsBlocksUser(),),
             expected={"user-support": {"RLS_BLOCKS_USER": "CRITICAL"}}),
    Scenario("error-blip", "Two minutes ago, one minute of server errors (about 14 % of that minute's requests "
             "failed with a TypeError), then normal: over 1 % for one minute is not the playbook's alert.",
             faults=(MetricHistory("error-blip"),)),
    Scenario("slow-responses", "For the last 8 minutes every 4th request took 1.2-1.5 s: the response-time P95 has "
             "been over 1000 ms each minute.",
             faults=(MetricHistory("slow-responses"),),
             expected={"monitoring": {"MONITOR_RESPONSE_P95": "CRITICAL"}}),
    Scenario("slow-database", "For the last 8 minutes every health check's SELECT 1 took 600-900 ms: the database "
             "latency P95 has been over 500 ms each minute (and responses over their 500 ms target).",
             faults=(MetricHistory("slow-database"),),
             expected={"monitoring": {"MONITOR_DB_LATENCY": "CRITICAL"}}),
    Scenario("webhook-processing-fails", "A release of the billing webhook handler writes each subscription event as "
             "a new plan row (its upsert lost ON CONFLICT): three users paid for Pro, their events were verified "
             "and recorded, then failed on the unique constraint subscription_tiers_user_id_key; none was upgraded.",
             faults=(WebhookMode("insert-subscription"), StripeActivity("upgrades")),
             expected={"stripe-webhook-failures": {"WEBHOOK_EVENTS_UNPROCESSED": "CRITICAL",
                                                  "WEBHOOK_SUCCESS_RATE_LOW": None,
                                                  "SUBSCRIPTION_MISMATCH": None}}),
    Scenario("email-bounces-one-domain", "One customer company's mail server (globex.example) rejects our mail: "
             "eight of its people signed up, and each welcome email bounced; mail to everyone else is delivered.",
             faults=(SignupActivity("bounces-one-domain"),),
             expected={"signup-failures": {"EMAIL_DELIVERY_FAILING": "WARNING"}}),
    Scenario("external-api-slow", "OpenAI's API answers, but after 3 s, longer than the worker waits (2 s): for the "
             "last 20 minutes every workflow calling it has timed out, and still does.",
             faults=(WorkflowFault("external-api-slow"),),
             expected={"workflows-not-executing": {"EXTERNAL_API_SLOW": "WARNING", "WORKFLOW_TIMEOUTS": None}}),
]}


def get(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise UsageError(f"unknown scenario '{name}'; valid: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]
