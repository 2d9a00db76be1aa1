"""The triage runbook's sections, one call each, so that its notebook keeps the narration only.

Each step asks one part of the platform its quickest questions (a read-only database session, GET requests only),
judges the answers with the checks of the runbook that owns them, with that runbook's thresholds, and keeps the
findings for the end; it returns the table its section shows. Nothing is recorded before ranking(): triage's verdict
is its ranking (checks/triage.py), cause before symptom, each problem with the runbook to run next. What a lost
connection records on the way (DB_UNREACHABLE) is ranked with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from IPython.display import Markdown

from .checks import access_logs, connections, db_health, errors, health, monitoring, signups, system_down, triage
from .checks import backups as backup_checks
from .checks import db_capacity as capacity_checks
from .checks import db_upkeep as upkeep_checks
from .checks import migrations as migration_checks
from .checks import workflows as workflow_checks
from .findings import Finding
from .runbook import Runbook
from .sources import backups, email, migrations, subsystems

ALL_CLEAR = "**Nothing to run next:** no quick signal shows a problem (`TRIAGE_ALL_CLEAR`)."


@dataclass
class Triage:
    """One triage run: the runbook, its parameters, and every signal's findings so far (ranked at the end)."""

    rb: Runbook
    timeout_s: float
    window_minutes: int
    seen: list[Finding] = field(default_factory=list)
    answered: dict[str, Any] = field(default_factory=dict)   # section 1's probes; section 3 reads Vercel's

    def platform(self, api_samples: int) -> pd.DataFrame:
        """Section 1: the API, the database, Vercel, Supabase Auth and the status pages at once, each within
        timeout_s (system_down's subsystems and findings, health-check's latency); one row per subsystem."""
        rb = self.rb
        self.answered, db = subsystems.probe(rb, timeout_s=self.timeout_s, api_samples=api_samples)
        table = system_down.subsystems(self.answered, db, rb.findings)
        self.seen += [system_down.summary(table), *system_down.findings(self.answered, db, rb.thresholds),
                      *health.latency(self.answered["api"], rb.thresholds)]
        return table

    def database(self) -> pd.DataFrame:
        """Section 2: the pool against the server's limit, sessions idle in a transaction (leaks) and lock waits,
        judged as database-connection-errors judges them; the connections by state."""
        rb = self.rb
        limits, by_state = rb.query("connection_limits"), rb.query("connections_by_state")
        leaked = rb.query("idle_in_transaction", min_idle_s=triage.LEAK_MIN_IDLE_S, application=None)
        leaks = connections.leaks(leaked, limits, rb.thresholds, triage.LEAK_MIN_IDLE_S)
        self.seen += [*connections.pool_usage(limits, by_state, rb.thresholds, leaks), *leaks,
                      *connections.blocking(rb.query("blocking_locks"), rb.thresholds, triage.LEAK_MIN_IDLE_S)]
        return by_state

    def key_metrics(self) -> pd.DataFrame:
        """Section 3: the five key metrics over the window against their alert rules (as monitoring judges them),
        then the 5xx rate around each production deployment section 1 read; the metrics' first five rows."""
        rb = self.rb
        per_minute = rb.query("key_metrics_per_minute", window_minutes=self.window_minutes)
        metrics = monitoring.series(per_minute, rb.thresholds, self.window_minutes)
        self.seen += [f for metric in monitoring.metrics(rb.thresholds)
                      for f in monitoring.check(metrics, metric, rb.thresholds, rb.env.name)]
        deployments = self.answered["vercel"][0]
        if deployments is not None:   # the same minutes' requests and 5xx, before and after each deployment
            minutes = errors.per_minute(per_minute, rb.thresholds)
            self.seen += errors.deploy_spike(errors.around_deploys(minutes, deployments, rb.thresholds),
                                             rb.thresholds)
        return monitoring.table(metrics, rb.thresholds).head(5)

    def billing(self) -> pd.DataFrame:
        """Section 4: the webhook endpoint's answers in the window and the billing events the app recorded
        (failed invoice payments); those events."""
        rb = self.rb
        hooks = rb.query("webhook_requests", window_minutes=self.window_minutes)
        events = rb.query("stripe_events_recent", window_minutes=self.window_minutes)
        self.seen += [*triage.webhook_answers(hooks, rb.thresholds, self.window_minutes),
                      *triage.payment_events(events, self.window_minutes)]
        return events

    def workflows(self) -> pd.DataFrame:
        """Section 5: executions stuck pending, the worker's heartbeats, failing integrations and plan limits, as
        workflows-not-executing judges them (without calling any external API); the pending executions."""
        rb = self.rb
        rule = rb.thresholds["workflows"]
        pending = rb.query("workflows_pending", stuck_minutes=rule["stuck_pending_minutes"])
        calls = rb.query("integration_failures", window_minutes=rule["integration_window_minutes"])
        self.seen += [*workflow_checks.stuck_pending(pending, rb.thresholds),
                      *workflow_checks.worker(rb.query("worker_heartbeats"), pending, rb.thresholds),
                      *triage.integrations(calls, rb.thresholds),
                      *workflow_checks.plan_limits(rb.query("plan_limit_usage", min_share=rule["plan_limit_share"],
                                                            limit=50))]
        return pending

    def signups(self) -> pd.DataFrame:
        """Section 6: signup success over the window, rate-limited clients, the sending domain at Resend and the
        app's recent email failures, as signup-failures judges them; the failed signups by reason."""
        rb = self.rb
        attempts = rb.query("signup_attempts", window_minutes=self.window_minutes)
        domains, emails, problem = email.read(rb.env, self.timeout_s)
        self.seen += [*signups.success_rate(attempts, rb.thresholds, self.window_minutes),
                      *signups.rate_limited(rb.query("rate_limits_active")),
                      *signups.email_domains(domains, problem),
                      *signups.email_delivery(rb.query("email_errors", window_minutes=self.window_minutes), emails,
                                              rb.thresholds, self.window_minutes)]
        return signups.failures_by_reason(attempts)

    def access(self) -> None:
        """Section 7: failed-login bursts, logins from new addresses and credentials used from unknown origins, as
        incident-data-breach judges them."""
        rb = self.rb
        rules = rb.thresholds["access_logs"]
        logins = rb.query("access_logins", window_minutes=self.window_minutes, baseline_days=rules["baseline_days"],
                          limit=5000)
        failed = rb.query("access_failed_logins", window_minutes=self.window_minutes, limit=5000)
        uses = rb.query("access_credential_use", window_minutes=self.window_minutes,
                        baseline_days=rules["baseline_days"], known_origins=list(rb.env.known_origins), limit=200)
        bursts, misused = access_logs.failed_bursts(failed, rules), access_logs.misuse(uses)
        self.seen += access_logs.findings(logins, failed, uses, access_logs.suspicious(logins, bursts, rules), bursts,
                                          misused, self.window_minutes)

    def upkeep(self) -> None:
        """Section 8: the newest backup's age, migrations against the database's history (when both could be read),
        tables read by sequential scans, vacuum lag, row level security, the slow failures (db_upkeep) and where
        space goes (db_capacity)."""
        rb = self.rb
        self.seen.append(backup_checks.freshness(backups.listing(backups.folder_of(rb.env)), rb.thresholds))
        folder = migrations.folder_of(rb.env)
        local, ignored, problem = migrations.read_local(folder)
        history = migrations.history(rb)
        if problem is None and not history.attrs.get("error"):
            self.seen += migration_checks.compare(migrations.states(local, history, ignored), folder)
        usage = rb.query("index_usage", limit=15, **db_health.seq_scan_params(rb.thresholds))
        vacuum = rb.query("vacuum_stats", limit=15, **db_health.vacuum_params(rb.thresholds))
        self.seen += [*db_health.seq_scans(usage, rb.thresholds), *db_health.vacuum(vacuum, rb.thresholds),
                      *db_health.rls(rb.query("rls_lint", schemas=["public"]))]
        self.seen += upkeep_checks.upkeep(rb)[1]   # wraparound, replication slots, sequences, invalid/duplicate indexes
        self.seen += capacity_checks.capacity(rb)[1]   # table and index bloat

    def ranking(self) -> pd.DataFrame | Markdown:
        """Section 9: every signal's problems recorded in rank order (TRIAGE_ALL_CLEAR when there is none); one row
        per runbook to run next, most likely cause first, or the all clear."""
        rb = self.rb
        rb.record(triage.ranked(self.seen, rb.env.name, recorded=rb.findings))
        table = triage.rank(rb.findings, rb.env.name)
        return table if len(table) else Markdown(ALL_CLEAR)
