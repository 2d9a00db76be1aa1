"""Guarded action: apply the pending migrations, as `supabase db push` does.

The plan (dry run) lists the pending migrations in version order with their statement counts. Apply needs
apply=True, an operator and the profile's migrations_database_url (a role that may run DDL: the run's diagnosis
session is read-only); it is refused, with nothing changed, while the checks found drift, a broken dependency or a
file that does not parse, unless override=True. Then, over one connection of its own: the CLI's history table
statements (CREATE SCHEMA/TABLE IF NOT EXISTS supabase_migrations.schema_migrations, its statements and name
columns), and each migration in ONE transaction: its statements one by one, then its row (version, name, the
statements array, exactly as the CLI inserts it). A migration already recorded when its turn comes (applied
meanwhile) is skipped; the first failure rolls that migration back and stops: the later ones are not attempted.
Audited in output/audit.jsonl (started with every planned migration, finished with each one's outcome, also when
it fails or is interrupted); a refused apply, and one with nothing pending (a no-op: e.g. repeated after it
succeeded), is audited too, as one record with the reason.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import psycopg

from ..checks import migrations as checks
from ..dsn import split_url
from ..errors import first_line
from ..runbook import Runbook
from ..settings import Secret
from ..sources import migrations
from ..sources.backups import target_of
from ..sources.migrations import Catalogue, LocalMigration
from . import approvals, audit

ACTION = "apply_migrations"
BLOCKING = ("MIGRATION_DRIFT", "MIGRATION_DEPENDENCY_BROKEN", "MIGRATION_INVALID")
IDENTITY = ["version", "sha256"]   # what an approval approves (approvals.plan_hash): each migration, by its digest
INTERRUPTED = "interrupted: outcome unknown (read supabase_migrations.schema_migrations)"
STATEMENT_TIMEOUT_S = 240      # one statement (an index build on a big table); the cell timeout bounds the run
# What `supabase db push` runs first (pkg/migration/history.go), so a database it never touched gets the table too.
HISTORY_TABLE = [
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY)",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text",
]
LOCK = "SELECT pg_advisory_xact_lock(hashtext('supabase_migrations.schema_migrations'))"
INSERT = "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) VALUES (%s, %s, %s)"


def plan(pending: list[LocalMigration]) -> pd.DataFrame:
    """The pending migrations in the order they would be applied, with their statement counts."""
    return pd.DataFrame([{"order": i, "version": m.version, "name": m.name, "statements": len(m.statements)}
                         for i, m in enumerate(pending, start=1)], columns=["order", "version", "name", "statements"])


def known(history: pd.DataFrame, pending: list[LocalMigration], existing: Catalogue | None) -> bool:
    """The apply's precondition on what the checks could read: the migration history (else what is pending is not
    known: every file would look pending) and, when something is pending, the catalogue (else what the migrations
    need was not checked). An apply while it is not known is refused, override or not."""
    return not history.attrs.get("error") and (not pending or existing is not None)


def refusal(no_url: str | None, pending: list[LocalMigration], checked: bool, blocking: list[str],
            override: bool) -> str | None:
    """Why an apply must not start, first reason first; None when it may: no writable URL (`no_url` says why); a
    pending file that does not parse (override or not: its statements are unknown); the checks could not read what
    they need (`checked`, see known()); the checks found `blocking` findings and no `override`."""
    unreadable = [m.file for m in pending if m.error]
    if no_url:
        return f"{no_url} (the diagnosis session is read-only; apply needs a role that may run DDL)"
    if unreadable:
        return f"{', '.join(unreadable)} cannot be read as SQL (override or not: its statements are unknown)"
    if not checked:
        return ("the migration history or the catalogue could not be read, so what is pending and what it needs is "
                "not known")
    if blocking and not override:
        return f"the checks above found {', '.join(blocking)}; fix it, or set override=true to apply anyway"
    return None


def run(rb: Runbook, steps: pd.DataFrame, pending: list[LocalMigration], apply: bool, operator: str,
        override: bool = False, lock_timeout_s: int = 5, checked: bool = True, approval: str = "") -> pd.DataFrame:
    """Dry run: the plan, marked (an approval request filed when the profile requires one). Apply: refused
    (MIGRATIONS_APPLY_REFUSED) unless the checks allow it, a writable URL is configured and approvals.gate lets it
    (`approval`: the approved request's id); else each migration applied in its own transaction, audited;
    MIGRATIONS_APPLIED or MIGRATION_FAILED. The `action` column says what happened to each."""
    if not apply and pending:
        approvals.gate(rb, ACTION, _identity(pending), False, operator, approval, identity=IDENTITY)
    if not apply:
        return steps.assign(action=pd.Series(dtype=str) if steps.empty else "dry run: would apply")
    audit.require_operator(operator)
    if steps.empty and checked:
        audit.declined(rb, ACTION, operator, audit.NO_OP, "no migration is pending", migrations=[])
        return steps.assign(action=pd.Series(dtype=str))
    secret = rb.env.secret("migrations_database_url")
    blocking = sorted({f.code for f in rb.findings if f.code in BLOCKING})
    no_url = rb.env.missing_secret_message("migrations_database_url") if secret is None else None
    reason = refusal(no_url, pending, checked, blocking, override)
    try:
        target = target_of(secret) if not reason else ""
    except ValueError as exc:     # the message never quotes the URL
        reason = f"{secret.name} is not a connection URL: {exc}"
    if reason:
        rb.record(checks.apply_refused(reason))
        audit.declined(rb, ACTION, operator, audit.REFUSED, reason, override=override, blocking_findings=blocking,
                       migrations=[{"version": m.version, "name": m.name, "file": m.file} for m in pending])
        return steps.assign(action="refused: nothing changed")
    allowed = approvals.gate(rb, ACTION, _identity(pending), True, operator, approval, identity=IDENTITY)
    if not allowed.allowed:
        rb.record(checks.apply_refused(allowed.reason))
        return steps.assign(action="refused: nothing changed")
    linked = {"request": allowed.request} if allowed.request else {}
    outcomes = {m.version: INTERRUPTED for m in pending}
    failure: dict[str, Any] = {}
    started = linked | {"target": target, "override": override, "blocking_findings": blocking,
                        "migrations": [{"version": m.version, "name": m.name, "file": m.file,
                                        "statements": len(m.statements),
                                        "sha256": hashlib.sha256(m.text.encode()).hexdigest()} for m in pending]}

    def finished() -> dict[str, Any]:
        return linked | {"target": target, "outcomes": outcomes, "failure": failure or None,
                         "applied": sum(o == "applied" for o in outcomes.values()),
                         "failed": sum(o.startswith("failed") for o in outcomes.values()),
                         "not_attempted": sum(o.startswith("not attempted") for o in outcomes.values())}

    with audit.attempt(rb, ACTION, operator, started, finished) as path:
        _apply(rb, secret, pending, outcomes, failure, lock_timeout_s)
    result = steps.assign(action=[outcomes[v] for v in steps["version"]])
    result.attrs["audit"] = str(path)
    rb.record(checks.applied(outcomes, target, failure or None))
    return result


def _identity(pending: list[LocalMigration]) -> list[dict[str, Any]]:
    """The pending migrations as an approval holds them: version and the SHA-256 of the file's text first."""
    return [{"version": m.version, "sha256": hashlib.sha256(m.text.encode()).hexdigest(), "name": m.name,
             "file": m.file, "statements": len(m.statements)} for m in pending]


def recorded_after(rb: Runbook, apply: bool, steps: pd.DataFrame, local: list[LocalMigration],
                   ignored: list[str]) -> pd.DataFrame | None:
    """What the database's history records now, after an apply was asked for with something pending (applied,
    failed or refused: the table says which stand); None after a dry run or with nothing pending, when section 1's
    table is still the answer."""
    if not apply or steps.empty:
        return None
    return migrations.states(local, migrations.history(rb), ignored)


def _connect(dsn: Secret, application: str, lock_timeout_s: int) -> psycopg.Connection:
    parts = split_url(dsn.reveal())
    extra = {k: v for k, v in parts.query.items() if isinstance(v, str)}
    options = f"-c lock_timeout={lock_timeout_s * 1000} -c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
    return psycopg.connect(host=parts.host, port=parts.port, user=parts.username, password=parts.password,
                           dbname=parts.database, application_name=application[:63], connect_timeout=10,
                           autocommit=True, **(extra | {"options": (extra.get("options", "") + " " + options).strip()}))


def _apply(rb: Runbook, dsn: Secret, pending: list[LocalMigration], outcomes: dict[str, str],
           failure: dict[str, Any], lock_timeout_s: int) -> None:
    """Apply in order into `outcomes` (applied / skipped / failed / not attempted); `failure` names the first one."""
    conn = None
    try:
        conn = _connect(dsn, f"aias-runbooks/{rb.slug}/{rb.run_id}", lock_timeout_s)
        for statement in HISTORY_TABLE:
            conn.execute(statement)
    except psycopg.Error as exc:
        said = "cannot connect" if conn is None else "cannot prepare supabase_migrations.schema_migrations"
        failure.update(version=pending[0].version, statement=0, line=0, error=f"{said}: {first_line(exc)}")
        for m in pending:
            outcomes[m.version] = "not attempted: " + failure["error"]
        if conn is not None:
            conn.close()
        return
    with conn:
        for index, m in enumerate(pending):
            current = 0
            try:
                with conn.transaction():
                    conn.execute(LOCK)     # one applier at a time; then: is it still pending?
                    if conn.execute("SELECT 1 FROM supabase_migrations.schema_migrations WHERE version = %s",
                                    [m.version]).fetchone():
                        outcomes[m.version] = "skipped: recorded as applied meanwhile"
                        continue
                    for number, statement in enumerate(m.statements, start=1):
                        current = number
                        conn.execute(statement.text)
                    current = 0     # the statements ran: a failure now is the history row's
                    conn.execute(INSERT, (m.version, m.name, [s.text for s in m.statements]))
                outcomes[m.version] = "applied"
            except psycopg.Error as exc:
                line = m.statements[current - 1].line if current else 0
                error = first_line(exc)
                failure.update(version=m.version, file=m.file, statement=current or "the history row", line=line,
                               error=error)
                outcomes[m.version] = f"failed: rolled back at statement {current or 'history row'}: {error}"
                for later in pending[index + 1:]:
                    outcomes[later.version] = f"not attempted: {m.version} failed before it"
                break


