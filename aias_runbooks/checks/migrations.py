"""Run Migrations: are the local migration files and the database's migration history the same list, and will the
pending migrations find what they use?

Every version gets one state (sources.migrations.states()):
- applied: a local file and a history row, saying the same SQL (comments and white space aside, sources.migrations
  .same_sql); `applied (not compared)` when the row holds no statements;
- pending: a local file not applied yet, newer than every applied one;
- pending, out of order: a local file not applied yet, older than the newest applied one (a branch merged late: its
  place in the history differs between environments; `supabase db push` refuses it without --include-all);
- missing locally: a history row without a file (a hotfix run from the dashboard, a file deleted or not pulled);
- changed since applied: a file whose SQL is not what the history row says was run.

Findings: MIGRATIONS_PENDING (WARNING) lists the pending ones. MIGRATION_DRIFT lists the rest: WARNING when versions
are missing locally or out of order (the repository and the database disagree about the history: a new environment
built from the files lacks the hotfix, and the CLI refuses to push), CRITICAL when an applied migration's file was
changed (the files claim a schema the database does not have: code written against the file can fail in production,
and the change will never be applied by any push). MIGRATIONS_OK when neither. MIGRATION_DEPENDENCY_BROKEN (CRITICAL)
when a pending migration uses an object that neither the database nor an earlier migration provides;
MIGRATION_INVALID (CRITICAL) when a pending file does not parse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..findings import Finding, Severity
from ..sources.migrations import (
    APPLIED,
    CHANGED,
    MISSING,
    NOT_COMPARED,
    OUT_OF_ORDER,
    PENDING,
    Catalogue,
    LocalMigration,
)
from .migration_dependencies import Problem, analyze

EXAMPLES = 10
PROBLEM_STATES = {OUT_OF_ORDER, MISSING, CHANGED}


def not_configured(problem: str) -> Finding:
    return Finding("MIGRATIONS_NOT_CONFIGURED", Severity.UNKNOWN, f"Migrations cannot be checked: {problem}.", {},
                   ["Name the folder of the app's migration files in the environment profile "
                    "(`migrations: {folder: .../supabase/migrations}`), or pass migrations_dir."])


def _listed(frame: pd.DataFrame) -> str:
    shown = [f"{r.version} {r.name}" for r in frame.head(EXAMPLES).itertuples(index=False)]
    return ", ".join(shown) + (f" (+{len(frame) - EXAMPLES} more)" if len(frame) > EXAMPLES else "")


def listing(table: pd.DataFrame, folder: Path | None, problem: str | None, history: pd.DataFrame) -> list[Finding]:
    """Section 1's findings: MIGRATIONS_NOT_CONFIGURED when the local files cannot be read (`problem`); nothing when
    the history could not be read (`history.attrs["error"]`: the runbook already recorded why, and a comparison
    with an unknown history would call every file pending); else compare()'s."""
    if problem:
        return [not_configured(problem)]
    if history.attrs.get("error"):
        return []
    return compare(table, folder)


def compare(table: pd.DataFrame, folder: Path | None) -> list[Finding]:
    """MIGRATION_DRIFT (first: it blocks the apply) and MIGRATIONS_PENDING, or MIGRATIONS_OK."""
    findings = []
    pending = table[table["state"].isin([PENDING, OUT_OF_ORDER])]
    missing = table[table["state"] == MISSING]
    changed = table[table["state"] == CHANGED]
    late = table[table["state"] == OUT_OF_ORDER]
    applied = table[table["state"].isin([APPLIED, NOT_COMPARED, CHANGED, MISSING])]
    local = table["file"].notna() & (table["version"] != "")
    base = {"folder": str(folder) if folder else "", "local_files": int(local.sum()), "applied": len(applied)}
    if len(missing) or len(changed) or len(late):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} applied migration(s) have no local file ({_listed(missing)})")
        if len(changed):
            parts.append(f"{len(changed)} file(s) differ from the SQL the database ran ({_listed(changed)})")
        if len(late):
            parts.append(f"{len(late)} pending file(s) are older than the newest applied migration ({_listed(late)})")
        evidence = base | {"missing_locally": list(missing["version"]), "changed_since_applied":
                           list(changed["version"]), "out_of_order": list(late["version"])}
        steps = []
        if len(missing):
            steps.append("For each version missing locally: find who applied it (a dashboard hotfix?), then commit "
                         "its SQL as a file of that version (`supabase migration fetch` writes the recorded "
                         "statements), or, if it was undone by hand, `supabase migration repair --status reverted "
                         "<version>`.")
        if len(changed):
            steps.append("For each changed file: restore the applied SQL (the history row's statements) and put the "
                         "change in a new migration; an applied migration is never edited.")
        if len(late):
            steps.append("For an out-of-order file: rename it to a version newer than the newest applied one, or "
                         "apply it knowingly (apply=true with override=true; the CLI's --include-all).")
        findings.append(Finding("MIGRATION_DRIFT", Severity.CRITICAL if len(changed) else Severity.WARNING,
                                "The migration history and the local files disagree: " + "; ".join(parts) + ".",
                                evidence, steps))
    if len(pending):
        findings.append(Finding(
            "MIGRATIONS_PENDING", Severity.WARNING,
            f"{len(pending)} local migration(s) not applied to the database: {_listed(pending)}.",
            base | {"pending": list(pending["version"]), "statements": int(pending["statements"].fillna(0).sum())},
            ["Read each pending file and the dependency check below; then apply them (section 3: apply=true with "
             "your name), or `supabase db push` from the app repository.",
             "Deploy code that needs them only after they are applied."]))
    if not findings:
        newest = applied["version"].iloc[-1] if len(applied) else "none"
        findings.append(Finding("MIGRATIONS_OK", Severity.OK,
                                f"All {base['local_files']} local migrations are applied, with the SQL the files "
                                f"hold, and the database records no other (newest {newest}).", base))
    return findings


def dependencies(problems: list[Problem], pending: list[LocalMigration]) -> list[Finding]:
    """MIGRATION_INVALID for files that do not parse, MIGRATION_DEPENDENCY_BROKEN for objects used before anything
    provides them; MIGRATION_DEPENDENCIES_OK when the pending migrations have neither. Nothing when none is pending."""
    if not pending:
        return []
    findings = []
    syntax = [p for p in problems if p.kind == "syntax"]
    broken = [p for p in problems if p.kind != "syntax"]
    if syntax:
        first = syntax[0]
        findings.append(Finding(
            "MIGRATION_INVALID", Severity.CRITICAL,
            f"{len(syntax)} pending migration(s) do not parse: {first.file} {first.missing}.",
            {"files": {p.file: p.missing for p in syntax[:EXAMPLES]}},
            ["Fix the SQL in the file (PostgreSQL's own parser refused it; so would the server)."]))
    if broken:
        first = broken[0]
        more = f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""
        findings.append(Finding(
            "MIGRATION_DEPENDENCY_BROKEN", Severity.CRITICAL,
            f"{first.file} line {first.line} uses {first.kind} {first.missing} ({first.used_in}), which neither "
            f"the database nor an earlier migration provides{more}.",
            {"missing": [f"{p.file}:{p.line}: {p.kind} {p.missing} ({p.used_in})" for p in broken[:EXAMPLES]],
             "files": sorted({p.file for p in broken})},
            ["Do not apply: the migration would fail at that statement (or, in a PL/pgSQL body, when it runs).",
             "Add the migration that creates it first (an earlier version), fix the name, or reorder the files; "
             "then run this runbook again."]))
    if not findings:
        count = sum(len(m.statements) for m in pending)
        findings.append(Finding(
            "MIGRATION_DEPENDENCIES_OK", Severity.OK,
            f"The {len(pending)} pending migration(s) ({count} statements) use only what the database has or an "
            f"earlier migration creates.", {"pending": [m.version for m in pending]}))
    return findings


def dependency_check(pending: list[LocalMigration], existing: Catalogue | None
                     ) -> tuple[list[Finding], pd.DataFrame | None, str]:
    """Section 2: the pending migrations analysed in apply order on top of what exists (`existing`; None when the
    catalogue could not be read): dependencies()' findings, the problems table (None without problems) and one line
    saying what was checked. None pending, or the catalogue unread (its query's finding says why), is no finding:
    nothing was judged, and the apply is refused while it is not known what the migrations need
    (actions.migrate.known)."""
    if not pending:
        return [], None, "no pending migration to check"
    if existing is None:
        return [], None, "the catalogue could not be read: not checked"
    problems = analyze([(m.file, m.text) for m in pending], existing)
    return (dependencies(problems, pending), problems_frame(problems) if problems else None,
            f"{len(pending)} pending migration(s) checked, in apply order, against the database's catalogue")


def problems_frame(problems: list[Problem]) -> pd.DataFrame:
    columns = ["file", "line", "statement", "kind", "missing", "used_in"]
    return pd.DataFrame([p.to_dict() for p in problems], columns=["version", "statement_line", *columns])[columns]


def apply_refused(reason: str, target: str = "") -> Finding:
    return Finding("MIGRATIONS_APPLY_REFUSED", Severity.UNKNOWN, f"Apply refused, nothing was changed: {reason}.",
                   {"target": target} if target else {},
                   ["Resolve what the refusal names, then run with apply=true again."])


def applied(outcomes: dict[str, str], target: str, failure: dict[str, Any] | None) -> Finding:
    """After an apply: MIGRATIONS_APPLIED, or MIGRATION_FAILED (CRITICAL) naming the migration, statement and error."""
    done = [v for v, o in outcomes.items() if o == "applied"]
    evidence: dict[str, Any] = {"target": target, "applied": done,
                                "not_attempted": [v for v, o in outcomes.items() if o.startswith("not attempted")]}
    if failure and not failure["statement"]:
        evidence |= failure
        return Finding("MIGRATION_FAILED", Severity.UNKNOWN, f"Nothing was applied to {target}: {failure['error']}.",
                       evidence, ["Check migrations_database_url (the role, its password, that it may create in "
                                  "schema supabase_migrations), then apply again."])
    if failure:
        evidence |= failure
        return Finding("MIGRATION_FAILED", Severity.CRITICAL,
                       f"Migration {failure['version']} failed at statement {failure['statement']} (line "
                       f"{failure['line']}): {failure['error']}. It was rolled back; {len(done)} before it were "
                       f"applied, {len(evidence['not_attempted'])} after it not attempted.", evidence,
                       ["Fix the migration (the statement and the server's message are above); it left nothing "
                        "behind, so apply again once fixed.",
                        "The migrations applied before it stay applied: check the app still works with them."])
    return Finding("MIGRATIONS_APPLIED", Severity.OK,
                   f"Applied {len(done)} migration(s) to {target}, each in one transaction and recorded in "
                   f"supabase_migrations.schema_migrations: {', '.join(done) or 'none'}.", evidence,
                   ["Deploy the code that needs them; run this runbook again to confirm MIGRATIONS_OK."])
