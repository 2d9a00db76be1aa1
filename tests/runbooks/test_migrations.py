"""migrations: the parser-based dependency analysis on small SQL texts (no database), the CLI's statement split, and
the runbook through the real CLI against the sandbox: healthy, scenario migration-drift, a broken dependency in a
pending file, the dry run, the guarded apply (in order, recorded as the CLI records it, audited) and a failing one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from aias_runbooks.actions import migrate
from aias_runbooks.checks import migrations as checks
from aias_runbooks.checks.migration_dependencies import analyze
from aias_runbooks.sandbox.faults import migration_drift as migration_files
from aias_runbooks.sandbox.platform.database.schema import MIGRATIONS
from aias_runbooks.settings import load_environment
from aias_runbooks.sources.migrations import Catalogue, pending_of, read_local, same_sql, split, states

from ..helpers import audit_records, finding, sandbox_dsn

RUNBOOK = "migrations"
# A database as Supabase hands it over (sandbox/platform.sql): public, extensions, Supabase Auth's schema with its
# tables and JWT helpers, and the CLI's history table; nothing of the app.
SUPABASE = Catalogue(schemas=frozenset({"public", "extensions", "supabase_migrations", "auth"}),
                     relations=frozenset({("supabase_migrations", "schema_migrations"),
                                          *(("auth", t) for t in ("users", "identities", "sessions", "refresh_tokens",
                                                                  "audit_log_entries", "instances",
                                                                  "schema_migrations"))}),
                     functions=frozenset(("auth", f) for f in ("uid", "role", "email", "jwt")))
APP = Catalogue(schemas=frozenset({"public", "auth", "private"}),
                relations=frozenset({("public", "tenants"), ("auth", "users")}),
                functions=frozenset({("auth", "uid")}))


def missing(problems) -> list[tuple[str, int, str, str]]:
    return [(p.file, p.line, p.kind, p.missing) for p in problems]


# -- the analysis, without a database ---------------------------------------------------------------------------

def test_references_must_exist_in_the_database_or_an_earlier_statement():
    sql = """CREATE TABLE public.projects (
  id uuid PRIMARY KEY,
  tenant_id uuid REFERENCES public.tenants (id),
  owner uuid REFERENCES auth.users (id)
);
CREATE TABLE public.tasks (
  id bigint PRIMARY KEY,
  project_id uuid REFERENCES public.projects (id),
  label_id bigint REFERENCES public.labels (id)
);"""
    assert missing(analyze([("20990101000000_projects.sql", sql)], APP)) == [
        ("20990101000000_projects.sql", 9, "table", "public.labels")]


def test_order_across_files_counts():
    first = ("20990101000000_a.sql", "CREATE VIEW public.v AS SELECT * FROM public.later;")
    second = ("20990101000100_b.sql", "CREATE TABLE public.later (id int);")
    assert missing(analyze([first, second], APP)) == [("20990101000000_a.sql", 1, "table", "public.later")]
    assert analyze([second, first], APP) == []


def test_alter_table_of_a_table_created_earlier_in_the_same_file():
    sql = ("CREATE TABLE public.notes (id int PRIMARY KEY);\n"
           "ALTER TABLE public.notes ADD COLUMN body text, ENABLE ROW LEVEL SECURITY;\n"
           "CREATE INDEX notes_body_idx ON public.notes (body);\n"
           "ALTER TABLE public.gone ADD COLUMN x int;\n"
           "ALTER TABLE IF EXISTS public.maybe ADD COLUMN x int;\n")
    assert missing(analyze([("20990101000000_notes.sql", sql)], APP)) == [
        ("20990101000000_notes.sql", 4, "table", "public.gone")]


def test_create_policy_using_a_function():
    policy = ("CREATE POLICY notes_own ON public.notes FOR SELECT TO authenticated\n"
              "  USING (owner = auth.uid() AND tenant_id IN (SELECT private.user_tenant_ids()));\n")
    table = "CREATE TABLE public.notes (id int, owner uuid, tenant_id uuid);\n"
    helper = ("CREATE FUNCTION private.user_tenant_ids() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$\n"
              "  SELECT id FROM public.tenants\n$$;\n")
    assert missing(analyze([("20990101000000_notes.sql", table + policy)], APP)) == [
        ("20990101000000_notes.sql", 3, "function", "private.user_tenant_ids()")]
    assert analyze([("20990101000000_notes.sql", table + helper + policy)], APP) == []
    assert missing(analyze([("20990101000000_notes.sql", policy)], APP)) == [
        ("20990101000000_notes.sql", 1, "table", "public.notes"),
        ("20990101000000_notes.sql", 2, "function", "private.user_tenant_ids()")]


def test_built_in_functions_and_types_need_nothing_but_the_apps_do():
    sql = ("CREATE TYPE public.mood AS ENUM ('ok', 'sad');\n"
           "CREATE TABLE public.t (id uuid DEFAULT gen_random_uuid(), at timestamptz DEFAULT now(), m mood,\n"
           "  n public.level, c text CHECK (length(c) < 10));\n")
    assert missing(analyze([("20990101000000_t.sql", sql)], APP)) == [
        ("20990101000000_t.sql", 3, "type", "public.level")]


def test_a_sql_function_body_is_followed_and_a_plpgsql_one_is_not():
    sql = ("CREATE FUNCTION public.f() RETURNS bigint LANGUAGE sql AS $$\n"
           "  SELECT count(*)\n"
           "  FROM public.nowhere\n"
           "$$;\n"
           "CREATE FUNCTION public.g() RETURNS void LANGUAGE plpgsql AS $$\n"
           "  BEGIN DELETE FROM public.elsewhere; END $$;\n"
           "DO $$ BEGIN PERFORM 1 FROM public.anywhere; END $$;\n")
    assert missing(analyze([("20990101000000_f.sql", sql)], APP)) == [
        ("20990101000000_f.sql", 3, "table", "public.nowhere")]


def test_an_apps_function_named_like_a_built_in_does_not_hide_the_built_in():
    realtime = Catalogue(schemas=frozenset({"public", "realtime"}),
                         functions=frozenset({("realtime", "to_regrole"), ("pg_catalog", "to_regrole")}))
    sql = "SELECT to_regrole('anon');\nSELECT realtime.to_regrole('anon'), realtime.nope();\n"
    assert missing(analyze([("20990101000000_r.sql", sql)], realtime)) == [
        ("20990101000000_r.sql", 2, "function", "realtime.nope()")]


def test_implicit_sequences_and_an_extensions_own_schema_count_as_created():
    sql = ("CREATE TABLE public.a (id bigint NOT NULL, n serial);\n"
           "ALTER TABLE ONLY public.a ALTER COLUMN id\n"
           "  ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME public.a_ids);\n"
           "ALTER TABLE public.a ADD COLUMN m bigint GENERATED ALWAYS AS IDENTITY;\n"
           "GRANT ALL ON SEQUENCE public.a_ids, public.a_n_seq, public.a_m_seq, public.a_x_seq TO anon;\n"
           "SELECT cron.schedule('nightly', '0 3 * * *', 'VACUUM');\n"
           "CREATE EXTENSION IF NOT EXISTS pg_cron;\n"
           "SELECT cron.schedule('nightly', '0 3 * * *', 'VACUUM');\n")
    assert missing(analyze([("20990101000000_s.sql", sql)], APP)) == [
        ("20990101000000_s.sql", 5, "table", "public.a_x_seq"),
        ("20990101000000_s.sql", 6, "function", "cron.schedule()")]


def test_a_hostile_identifier_with_quotes_is_one_name_and_shown_quoted():
    sql = ('CREATE TABLE public."we""ird; DROP TABLE x; --" (id int PRIMARY KEY);\n'
           'CREATE INDEX ON public."we""ird; DROP TABLE x; --" (id);\n'
           'CREATE TABLE public.child (parent int REFERENCES public."Odd""Name" (id));\n')
    problems = analyze([("20990101000000_q.sql", sql)], APP)
    assert missing(problems) == [("20990101000000_q.sql", 3, "table", 'public."Odd""Name"')]


def test_drop_removes_and_rename_moves():
    sql = ("CREATE TABLE public.a (id int);\n"
           "ALTER TABLE public.a RENAME TO b;\n"
           "SELECT * FROM public.b;\n"
           "SELECT * FROM public.a;\n"
           "DROP TABLE public.b;\n"
           "INSERT INTO public.b VALUES (1);\n"
           "DROP TABLE IF EXISTS public.b;\n")
    assert missing(analyze([("20990101000000_r.sql", sql)], APP)) == [
        ("20990101000000_r.sql", 4, "table", "public.a"), ("20990101000000_r.sql", 6, "table", "public.b")]


def test_unqualified_names_follow_the_search_path_and_ctes_are_not_tables():
    sql = ("CREATE TABLE items (id int);\n"
           "WITH recent AS (SELECT * FROM items) SELECT * FROM recent, pg_class;\n"
           "SET search_path = private;\n"
           "SELECT * FROM items;\n")
    assert missing(analyze([("20990101000000_u.sql", sql)], APP)) == [
        ("20990101000000_u.sql", 4, "table", "items")]


def test_a_file_that_does_not_parse_is_a_syntax_problem_with_its_line():
    problems = analyze([("20990101000000_bad.sql", "SELECT 1;\n-- é\nCREATE TABLE (id int);\n")], APP)
    assert [(p.kind, p.line) for p in problems] == [("syntax", 3)] and "syntax error" in problems[0].missing


def test_the_sandbox_migrations_replay_on_a_fresh_supabase_database():
    files = [(p.name, p.read_text()) for p in sorted(MIGRATIONS.glob("*.sql"))]
    assert len(files) >= 10 and analyze(files, SUPABASE) == []


def test_statements_are_split_as_the_supabase_cli_records_them():
    sql = ("-- a table\nCREATE TABLE t (x text DEFAULT 'a;b');\n\n"
           "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;;\n"
           "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
           "SELECT 'no semicolon at the end'\n")
    assert [s.text for s in split(sql)] == [
        "-- a table\nCREATE TABLE t (x text DEFAULT 'a;b')",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$",
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "SELECT 'no semicolon at the end'"]
    assert [s.line for s in split(sql)] == [2, 4, 5, 6]
    assert [s.text for s in split("SELECT 1; -- the end\n")] == ["SELECT 1", "-- the end"]


def test_same_sql_ignores_comments_and_spacing_but_not_a_changed_value():
    assert same_sql("-- v1\nCREATE TABLE t (a int DEFAULT 1);", "create   table t(a int default 1)")
    assert not same_sql("CREATE TABLE t (a int DEFAULT 1);", "CREATE TABLE t (a int DEFAULT 2);")
    for path in sorted(MIGRATIONS.glob("*.sql")):   # a whole file and the CLI's pieces of it, offsets shifted
        text = path.read_text()
        assert same_sql(text, ";\n".join(s.text for s in split(text))), path.name


def test_states_and_drift_from_files_and_history(tmp_path):
    for name, sql in [("20990101000000_a.sql", "CREATE TABLE a (id int);"),
                      ("20990101000100_b.sql", "-- now with a comment\nCREATE TABLE b (id int);"),
                      ("20990101000200_c.sql", "CREATE TABLE c (id bigint);"),
                      ("20990101000300_late.sql", "CREATE TABLE late (id int);"),
                      ("20990101000500_new.sql", "CREATE TABLE new (id int);"), ("notes.sql", "-- not one")]:
        (tmp_path / name).write_text(sql)
    local, ignored, problem = read_local(tmp_path)
    history = pd.DataFrame([("20990101000000", "a", None), ("20990101000100", "b", ["CREATE TABLE b (id int)"]),
                            ("20990101000200", "c", ["CREATE TABLE c (id int)"]),
                            ("20990101000400", "hotfix", ["CREATE INDEX ON a (id)"])],
                           columns=["version", "name", "statements"])
    table = states(local, history, ignored)
    assert problem is None and ignored == ["notes.sql"]
    assert dict(zip(table["version"], table["state"], strict=True)) == {
        "20990101000000": "applied (not compared)", "20990101000100": "applied", "20990101000200":
        "changed since applied", "20990101000300": "pending, out of order", "20990101000400": "missing locally",
        "20990101000500": "pending", "": "ignored (not named <version>_<name>.sql)"}
    assert [m.version for m in pending_of(local, table)] == ["20990101000300", "20990101000500"]
    found = {f.code: f for f in checks.compare(table, tmp_path)}
    assert set(found) == {"MIGRATION_DRIFT", "MIGRATIONS_PENDING"}
    drift = found["MIGRATION_DRIFT"]
    assert drift.severity.value == "CRITICAL", "an applied migration's file was changed"
    assert (drift.evidence["changed_since_applied"], drift.evidence["out_of_order"], drift.evidence["missing_locally"]
            ) == (["20990101000200"], ["20990101000300"], ["20990101000400"])
    assert found["MIGRATIONS_PENDING"].evidence["local_files"] == 5


def pending_files(folder: Path, *files: tuple[str, str]) -> list:
    for name, sql in files:
        (folder / name).write_text(sql)
    return read_local(folder)[0]


def test_section_1_judges_only_what_it_could_read(tmp_path):
    """No folder: MIGRATIONS_NOT_CONFIGURED; no history: nothing (the query's finding says why; every file would
    look pending); both read: the comparison."""
    local = pending_files(tmp_path, ("20990101000000_a.sql", "CREATE TABLE a (id int);"))
    unread = pd.DataFrame(columns=["version", "name", "statements"])
    unread.attrs["error"] = "skipped: connection refused"
    read = pd.DataFrame([("20990101000000", "a", ["CREATE TABLE a (id int)"])],
                        columns=["version", "name", "statements"])
    assert [f.code for f in checks.listing(states([], unread), None, "no folder named", unread)] == [
        "MIGRATIONS_NOT_CONFIGURED"]
    assert checks.listing(states(local, unread), tmp_path, None, unread) == []
    assert [f.code for f in checks.listing(states(local, read), tmp_path, None, read)] == ["MIGRATIONS_OK"]


def test_the_dependency_check_says_what_it_checked(tmp_path):
    pending = pending_files(tmp_path, ("20990101000000_r.sql", "CREATE TABLE r (t uuid REFERENCES public.nowhere);"))
    assert checks.dependency_check([], APP) == ([], None, "no pending migration to check")
    assert checks.dependency_check(pending, None) == ([], None, "the catalogue could not be read: not checked")
    found, problems, said = checks.dependency_check(pending, APP)
    assert [f.code for f in found] == ["MIGRATION_DEPENDENCY_BROKEN"] and said.startswith("1 pending migration")
    assert list(problems["missing"]) == ["public.nowhere"]


def test_an_apply_is_refused_while_the_checks_could_not_read_what_they_need(tmp_path):
    """The precondition the notebook used to compute: the history read and, with something pending, the catalogue;
    not known is refused even with override, as is a file that does not parse; blocking findings yield to override."""
    pending = pending_files(tmp_path, ("20990101000000_a.sql", "CREATE TABLE a (id int);"))
    read = pd.DataFrame(columns=["version", "name", "statements"])
    unread = read.copy()
    unread.attrs["error"] = "skipped: connection refused"
    assert migrate.known(read, [], None) and migrate.known(read, pending, APP)
    assert not migrate.known(unread, [], APP) and not migrate.known(read, pending, None)
    assert "could not be read" in migrate.refusal(None, pending, False, [], override=True)
    assert migrate.refusal("no url", pending, False, [], override=True).startswith("no url (the diagnosis session")
    assert "MIGRATION_DRIFT" in migrate.refusal(None, pending, True, ["MIGRATION_DRIFT"], override=False)
    assert migrate.refusal(None, pending, True, ["MIGRATION_DRIFT"], override=True) is None
    broken = pending_files(tmp_path, ("20990101000100_b.sql", "CREATE TABEL b (id int);"))
    assert "cannot be read as SQL" in migrate.refusal(None, broken, True, [], override=True)


# -- the runbook against the sandbox ----------------------------------------------------------------------------

def migrations_folder() -> Path:
    return load_environment("sandbox").migrations["folder"]


@pytest.fixture
def folder(sandbox, tmp_path):
    """A copy of the sandbox's local migrations (all applied) to add pending files to; what the test applied is
    removed afterwards (tables named mig_test_*, history rows of 2099)."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_folder(), copy)
    yield copy
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        for (table,) in conn.execute("SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                                     "AND tablename LIKE 'mig\\_test\\_%'").fetchall():
            conn.execute(f"DROP TABLE IF EXISTS public.{table} CASCADE")
        conn.execute("DELETE FROM supabase_migrations.schema_migrations WHERE version LIKE '2099%'")


def history() -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(sandbox_dsn()) as conn:
        return conn.execute("SELECT version, name, statements FROM supabase_migrations.schema_migrations "
                            "ORDER BY version").fetchall()


def public_tables() -> set[str]:
    with psycopg.connect(sandbox_dsn()) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


GOOD_A = """-- projects of a tenant
CREATE TABLE public.mig_test_projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name <> '%s; not a placeholder')
);
ALTER TABLE public.mig_test_projects ENABLE ROW LEVEL SECURITY;
CREATE POLICY mig_test_projects_member ON public.mig_test_projects FOR SELECT TO authenticated
  USING (tenant_id IN (SELECT private.user_tenant_ids()));
"""
GOOD_B = """CREATE TABLE public.mig_test_tasks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id uuid NOT NULL REFERENCES public.mig_test_projects (id) ON DELETE CASCADE
);
CREATE INDEX mig_test_tasks_project_idx ON public.mig_test_tasks (project_id);
"""


def test_healthy_is_ok(run):
    result = run(RUNBOOK)
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert result.codes == {"MIGRATIONS_OK": "OK"}
    ok = finding(result, "MIGRATIONS_OK")["evidence"]
    assert ok["local_files"] == ok["applied"] == len(list(MIGRATIONS.glob("*.sql")))


def test_migration_drift_names_the_hotfix_and_the_pending_file(run, scenario):
    scenario("migration-drift")
    result = run(RUNBOOK)
    assert result.proc.returncode == 1, result.verdict["findings"]
    assert result.codes == {"MIGRATION_DRIFT": "WARNING", "MIGRATIONS_PENDING": "WARNING",
                            "MIGRATION_DEPENDENCIES_OK": "OK"}
    drift = finding(result, "MIGRATION_DRIFT")["evidence"]
    assert drift["missing_locally"] == [migration_files.HOTFIX_VERSION]
    assert drift["changed_since_applied"] == [] and drift["out_of_order"] == []
    assert finding(result, "MIGRATIONS_PENDING")["evidence"]["pending"] == [migration_files.PENDING_VERSION]
    text = (result.folder / "notebook.ipynb").read_text()
    assert "missing locally" in text and "dry run: would apply" in text

    before = history()
    refused = run(RUNBOOK, "-p", "apply=true", "--operator", "alice")
    assert "MIGRATION_DRIFT" in finding(refused, "MIGRATIONS_APPLY_REFUSED")["title"]
    assert history() == before, "refused for drift: nothing applied"
    (record,) = audit_records(refused)
    assert (record["action"], record["phase"], record["outcome"]) == ("apply_migrations", "refused", "refused")
    assert "MIGRATION_DRIFT" in record["reason"] and record["blocking_findings"] == ["MIGRATION_DRIFT"]
    assert [m["version"] for m in record["migrations"]] == [migration_files.PENDING_VERSION]
    assert record["operator"] == "alice" and record["override"] is False


def test_a_pending_migration_using_a_missing_table_is_critical_and_apply_is_refused(run, folder):
    (folder / "20990101000000_mig_test_reports.sql").write_text(
        "-- reports per project\nCREATE TABLE public.mig_test_reports (\n  id int PRIMARY KEY,\n"
        "  project_id uuid REFERENCES public.mig_test_nowhere (id)\n);\n")
    before = history(), public_tables()
    result = run(RUNBOOK, "-p", f"migrations_dir={folder}")
    assert result.proc.returncode == 2, result.verdict["findings"]
    broken = finding(result, "MIGRATION_DEPENDENCY_BROKEN")
    assert broken["severity"] == "CRITICAL"
    assert "20990101000000_mig_test_reports.sql line 4" in broken["title"]
    assert "public.mig_test_nowhere" in broken["title"] and "REFERENCES" in broken["title"]

    refused = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice")
    assert "MIGRATIONS_APPLY_REFUSED" in refused.codes and "MIGRATION_DEPENDENCY_BROKEN" in finding(
        refused, "MIGRATIONS_APPLY_REFUSED")["title"]
    (record,) = audit_records(refused)
    assert record["phase"] == "refused" and "MIGRATION_DEPENDENCY_BROKEN" in record["reason"]
    assert (history(), public_tables()) == before, "a refused apply changes nothing"

    forced = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "-p", "override=true",
                 "--operator", "alice")
    failed = finding(forced, "MIGRATION_FAILED")
    assert failed["severity"] == "CRITICAL" and failed["evidence"]["line"] == 2, "the statement starts on line 2"
    started = next(r for r in audit_records(forced) if r["phase"] == "started")
    assert "mig_test_nowhere" in failed["title"] and started["override"] is True
    assert (history(), public_tables()) == before, "the server refused it too: rolled back"


def test_a_pending_file_that_does_not_parse_is_critical_and_never_applied(run, folder):
    (folder / "20990101000000_mig_test_typo.sql").write_text("CREATE TABLE public.mig_test_typo (id int);\n"
                                                             "CREATE TABEL public.mig_test_typo2 (id int);\n")
    before = history(), public_tables()
    result = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "-p", "override=true",
                 "--operator", "alice")
    assert result.proc.returncode == 2 and result.codes["MIGRATION_INVALID"] == "CRITICAL"
    assert "20990101000000_mig_test_typo.sql line 2" in finding(result, "MIGRATION_INVALID")["title"]
    assert "cannot be read as SQL" in finding(result, "MIGRATIONS_APPLY_REFUSED")["title"]
    assert (history(), public_tables()) == before
    assert [(r["phase"], "cannot be read as SQL" in r["reason"]) for r in audit_records(result)] == [("refused", True)]


def test_dry_run_changes_nothing(run, folder):
    (folder / "20990101000000_mig_test_projects.sql").write_text(GOOD_A)
    (folder / "20990101000100_mig_test_tasks.sql").write_text(GOOD_B)
    before = history(), public_tables()
    result = run(RUNBOOK, "-p", f"migrations_dir={folder}")
    assert result.proc.returncode == 1, result.verdict["findings"]
    assert result.codes == {"MIGRATIONS_PENDING": "WARNING", "MIGRATION_DEPENDENCIES_OK": "OK"}
    assert finding(result, "MIGRATIONS_PENDING")["evidence"]["pending"] == ["20990101000000", "20990101000100"]
    assert "dry run: would apply" in (result.folder / "notebook.ipynb").read_text()
    assert not (result.output / "audit.jsonl").exists()
    assert (history(), public_tables()) == before


def test_apply_runs_in_order_records_as_the_cli_does_and_is_audited(run, folder):
    (folder / "20990101000000_mig_test_projects.sql").write_text(GOOD_A)
    (folder / "20990101000100_mig_test_tasks.sql").write_text(GOOD_B)
    before = history()
    applied = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice")
    assert applied.codes.get("MIGRATIONS_APPLIED") == "OK", applied.verdict["findings"]
    assert applied.proc.returncode == 1, "the run still reports what it found pending"
    rows = history()
    assert rows[:len(before)] == before and [r[:2] for r in rows[len(before):]] == [
        ("20990101000000", "mig_test_projects"), ("20990101000100", "mig_test_tasks")]
    assert rows[-2][2] == [s.text for s in split(GOOD_A)] and len(rows[-2][2]) == 3
    assert rows[-1][2] == [s.text for s in split(GOOD_B)] and rows[-2][2][0].startswith("-- projects of a tenant")
    assert {"mig_test_projects", "mig_test_tasks"} <= public_tables()

    records = audit_records(applied)
    assert [r["phase"] for r in records] == ["started", "finished"] and records[0]["attempt"] == records[1]["attempt"]
    assert {r["action"] for r in records} == {"apply_migrations"} and records[0]["operator"] == "alice"
    assert [m["version"] for m in records[0]["migrations"]] == ["20990101000000", "20990101000100"]
    assert records[1]["outcomes"] == {"20990101000000": "applied", "20990101000100": "applied"}
    assert records[1]["applied"] == 2 and records[1]["failed"] == 0

    again = run(RUNBOOK, "-p", f"migrations_dir={folder}")
    assert again.proc.returncode == 0 and again.codes == {"MIGRATIONS_OK": "OK"}, again.verdict["findings"]
    repeated = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice")
    assert repeated.codes == {"MIGRATIONS_OK": "OK"} and history() == rows, "a repeated apply changes nothing"
    assert [(r["phase"], r.get("reason")) for r in audit_records(repeated)[2:]] == [
        ("no-op", "no migration is pending")]
    assert "apply_migrations no-op, nothing changed: no migration is pending" in (
        repeated.folder / "notebook.ipynb").read_text()


def test_a_failing_migration_is_rolled_back_and_stops_the_sequence(run, folder):
    (folder / "20990101000000_mig_test_projects.sql").write_text(GOOD_A)
    (folder / "20990101000100_mig_test_broken.sql").write_text(
        "CREATE TABLE public.mig_test_half (id int);\n"
        "INSERT INTO public.mig_test_projects (no_such_column) VALUES (1);\n")
    (folder / "20990101000200_mig_test_tasks.sql").write_text(GOOD_B)
    before = history()
    result = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice")
    assert result.proc.returncode == 2, result.verdict["findings"]
    failed = finding(result, "MIGRATION_FAILED")
    assert failed["evidence"]["version"] == "20990101000100" and failed["evidence"]["statement"] == 2
    assert failed["evidence"]["line"] == 2 and "no_such_column" in failed["title"]
    assert failed["evidence"]["applied"] == ["20990101000000"]
    assert failed["evidence"]["not_attempted"] == ["20990101000200"]
    assert [r[0] for r in history()[len(before):]] == ["20990101000000"]
    tables = public_tables()
    assert "mig_test_projects" in tables and not {"mig_test_half", "mig_test_tasks"} & tables

    outcomes = audit_records(result)[1]["outcomes"]
    assert outcomes["20990101000000"] == "applied" and outcomes["20990101000100"].startswith("failed: rolled back")
    assert outcomes["20990101000200"].startswith("not attempted")


def test_apply_without_a_writable_url_is_refused(run, folder):
    (folder / "20990101000000_mig_test_projects.sql").write_text(GOOD_A)
    before = history(), public_tables()
    result = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice",
                 env=os.environ | {"AIAS_SANDBOX_MIGRATIONS_DATABASE_URL": ""})
    refused = finding(result, "MIGRATIONS_APPLY_REFUSED")
    assert "migrations_database_url" in refused["title"] and "read-only" in refused["title"]
    assert (history(), public_tables()) == before
    (record,) = audit_records(result)
    assert record["phase"] == "refused" and "migrations_database_url" in record["reason"]

    garbled = run(RUNBOOK, "-p", f"migrations_dir={folder}", "-p", "apply=true", "--operator", "alice",
                  env=os.environ | {"AIAS_SANDBOX_MIGRATIONS_DATABASE_URL": "postgres-at-the-usual-place"})
    assert "RUNBOOK_ERROR" not in garbled.codes, garbled.verdict["findings"]
    assert "not a connection URL" in finding(garbled, "MIGRATIONS_APPLY_REFUSED")["title"]
    assert (history(), public_tables()) == before
    assert [(r["phase"], "not a connection URL" in r["reason"]) for r in audit_records(garbled)][1:] == [
        ("refused", True)]
    assert "postgres-at-the-usual-place" not in (garbled.output / "audit.jsonl").read_text()
