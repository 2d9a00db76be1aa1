"""database-backup through the runner, against the sandbox's real Postgres: its backup folder (a backup taken at
`sandbox up`), the scratch database aias_scratch that verify restores into, and the guarded restore into the target."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dotenv import dotenv_values
from psycopg import sql

from aias_runbooks import paths
from aias_runbooks.checks import backups as checks
from aias_runbooks.sandbox.platform.database import stats
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import backups
from aias_runbooks.thresholds import load_thresholds

from ..helpers import audit_records, finding, leaks, monitor_dsn, sandbox_dsn

RUNBOOK = "database-backup"
MARKER = "backup-round-trip"       # a tenant the round trip adds after its backup; the restore must remove it


def backup_secret():
    return load_environment("sandbox").secret("backup_database_url")


def target() -> str:
    return backups.target_of(backup_secret())


def backup_folder() -> Path:
    return backups.folder_of(load_environment("sandbox"))


def take_backup(run) -> dict:
    """A new backup (create=true, no verify); its metadata."""
    made = run(RUNBOOK, "-p", "create=true", "-p", "verify=false")
    assert made.proc.returncode == 0, made.verdict["findings"]
    name = finding(made, "BACKUP_CREATED")["evidence"]["backup"]
    return json.loads((backup_folder() / name).with_suffix(".json").read_text())


def marker_tenants() -> int:
    with psycopg.connect(sandbox_dsn()) as conn:
        return conn.execute("SELECT count(*) FROM public.tenants WHERE slug = %s", [MARKER]).fetchone()[0]


@pytest.fixture
def marker(sandbox):
    """The marker tenant is removed afterwards, whatever the test left."""
    yield
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM public.tenants WHERE slug = %s", [MARKER])


def test_healthy_has_a_fresh_backup_that_verifies(run):
    result = run(RUNBOOK)
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert result.codes == {"BACKUP_OK": "OK", "BACKUP_VERIFIED": "OK"}
    verified = finding(result, "BACKUP_VERIFIED")
    assert verified["evidence"]["tables"] >= 15 and "aias_scratch" in verified["evidence"]["scratch"]
    assert {p.name for p in result.folder.iterdir()} >= {"notebook.ipynb", "report.html", "verdict.json"}
    assert "dry run: would replace" in (result.folder / "notebook.ipynb").read_text()
    assert not (result.output / "audit.jsonl").exists(), "verify and the dry run are not audited actions"


def test_backup_stale_is_critical(run, scenario):
    scenario("backup-stale")
    result = run(RUNBOOK, "-p", "verify=false")
    assert result.proc.returncode == 2
    stale = finding(result, "BACKUP_STALE")
    assert stale["severity"] == "CRITICAL" and 71.9 < stale["evidence"]["newest_age_hours"] < 72.5
    assert stale["evidence"]["backups"] == 1


def test_restore_dry_run_changes_nothing_and_a_wrong_target_or_no_operator_is_refused(run, marker):
    meta = take_backup(run)
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO public.tenants (name, slug) VALUES ('Round trip', %s)", [MARKER])
    chosen = ("-p", f"backup={meta['file']}", "-p", "verify=false")

    dry = run(RUNBOOK, *chosen)
    assert dry.proc.returncode == 0 and not (dry.output / "audit.jsonl").exists()
    text = (dry.folder / "notebook.ipynb").read_text()
    assert f"target: {target()}" in text and "dry run: would replace" in text
    assert marker_tenants() == 1, "a dry run changes nothing"

    wrong = run(RUNBOOK, *chosen, "-p", "apply=true", "--operator", "alice", "-p", "confirm_target=production")
    assert wrong.proc.returncode == 3 and "BACKUP_RESTORED" not in wrong.codes
    refused = finding(wrong, "RESTORE_REFUSED")
    assert target() in refused["title"] and "'production'" in refused["title"]
    assert marker_tenants() == 1
    (record,) = audit_records(wrong)
    assert (record["action"], record["phase"], record["outcome"]) == ("restore_database", "refused", "refused")
    assert "confirm_target must repeat the target" in record["reason"] and "'production'" in record["reason"]
    assert (record["target"], record["backup"], record["operator"]) == (target(), meta["file"], "alice")

    nobody = run(RUNBOOK, *chosen, "-p", "apply=true", "-p", f"confirm_target={target()}")
    assert nobody.proc.returncode == 3 and nobody.folders == wrong.folders, "refused before anything runs"
    assert nobody.proc.stderr.count("\n") == 1 and "operator" in nobody.proc.stderr
    assert marker_tenants() == 1


def _schema_grants(schemas: list[str]) -> dict[str, str]:
    with psycopg.connect(sandbox_dsn()) as conn:
        return dict(conn.execute("SELECT nspname, coalesce(nspacl::text, '') FROM pg_namespace "
                                 "WHERE nspname = ANY(%s)", [schemas]).fetchall())


def test_round_trip_restore_brings_back_the_backup_and_is_audited(run, marker):
    meta = take_backup(run)
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:   # changes after the backup, all to be undone
        conn.execute("INSERT INTO public.tenants (name, slug) VALUES ('Round trip', %s)", [MARKER])
        conn.execute("UPDATE public.plan_limits SET max_api_requests_per_minute = max_api_requests_per_minute + 1 "
                     "WHERE tier = 'enterprise'")
        conn.execute("DELETE FROM public.api_keys WHERE id = (SELECT id FROM public.api_keys ORDER BY id LIMIT 1)")
    changed = ("public.tenants", "public.plan_limits", "public.api_keys")
    before = backups.read_checksums(backup_secret(), ["public"], "aias-runbooks/test").set_index("table")
    assert all(before.loc[t, "checksum"] != meta["tables"][t]["checksum"] for t in changed)
    grants_before = _schema_grants(meta["schemas"])

    try:
        restored = run(RUNBOOK, "-p", f"backup={meta['file']}", "-p", "verify=false", "-p", "apply=true",
                       "--operator", "alice", "-p", f"confirm_target={target()}")
    finally:   # the restore replaced every table: their statistics start over, as after a scenario that dirties them
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            stats.warm(conn)
            conn.execute(stats.FLUSH_STATS_SQL)
            conn.execute(stats.STATS_RESET_SQL)
    assert restored.proc.returncode == 0, restored.verdict["findings"]
    done = finding(restored, "BACKUP_RESTORED")
    assert done["evidence"]["target"] == target() and done["evidence"]["tables"] == len(meta["tables"])

    after = backups.read_checksums(backup_secret(), ["public"], "aias-runbooks/test").set_index("table")
    for table in changed:
        assert after.loc[table, "checksum"] == meta["tables"][table]["checksum"], table
        assert after.loc[table, "rows"] == meta["tables"][table]["rows"], table
    assert marker_tenants() == 0, "the row added after the backup is gone"
    # the schemas themselves stay as the target has them (Supabase sets their grants): a restore that dropped and
    # re-created `public` lost PUBLIC's USAGE on it, and every role relying on it (the app, the monitor) was refused
    assert _schema_grants(meta["schemas"]) == grants_before
    with psycopg.connect(monitor_dsn()) as monitor:
        assert monitor.execute("SELECT count(*) FROM public.tenants").fetchone()[0] > 0

    records = audit_records(restored)
    assert [r["phase"] for r in records] == ["started", "finished"]
    assert {r["action"] for r in records} == {"restore_database"} and records[0]["operator"] == "alice"
    assert records[0]["target"] == target() and records[0]["sha256"] == meta["sha256"]
    assert records[1]["outcome"] == "restored" and records[0]["attempt"] == records[1]["attempt"]


def test_a_damaged_backup_fails_verification_by_sha256_and_is_not_restored(run, marker):
    meta = take_backup(run)
    dump = backup_folder() / meta["file"]
    try:
        data = bytearray(dump.read_bytes())
        for offset in (len(data) // 3, len(data) // 2):
            data[offset] ^= 0xFF
        dump.write_bytes(bytes(data))
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("INSERT INTO public.tenants (name, slug) VALUES ('Round trip', %s)", [MARKER])

        result = run(RUNBOOK, "-p", f"backup={meta['file']}", "-p", "apply=true", "--operator", "alice",
                     "-p", f"confirm_target={target()}")
        assert result.proc.returncode == 2
        failed = finding(result, "BACKUP_VERIFY_FAILED")
        assert failed["severity"] == "CRITICAL" and "SHA-256" in failed["title"] and meta["file"] in failed["title"]
        assert "SHA-256" in finding(result, "RESTORE_REFUSED")["title"]
        assert marker_tenants() == 1, "nothing was restored"
        assert [(r["phase"], "SHA-256" in r["reason"]) for r in audit_records(result)] == [("refused", True)]
    finally:   # the newest backup must be a good one again for the tests after this one
        dump.unlink(missing_ok=True)
        dump.with_suffix(".json").unlink(missing_ok=True)


def test_verify_does_not_empty_a_scratch_database_not_marked_as_scratch(run):
    scratch = sandbox_dsn().rsplit("/", 1)[0] + "/aias_scratch"
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        mark = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                            "WHERE datname = 'aias_scratch'").fetchone()[0]
        conn.execute("COMMENT ON DATABASE aias_scratch IS NULL")
    try:
        with psycopg.connect(scratch, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS public; CREATE TABLE IF NOT EXISTS public.kept (id int)")
        result = run(RUNBOOK)
        assert result.proc.returncode == 3
        assert "not marked as scratch" in finding(result, "BACKUP_NOT_VERIFIED")["title"]
        with psycopg.connect(scratch) as conn:
            assert conn.execute("SELECT to_regclass('public.kept') IS NOT NULL").fetchone()[0], "nothing dropped"
    finally:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("COMMENT ON DATABASE aias_scratch IS {}").format(sql.Literal(mark)))


def test_the_backup_password_never_reaches_a_report(run):
    """pg_dump and pg_restore get the password through a private passfile: none of it is in any output."""
    env = dotenv_values(paths.sandbox_dir() / "sandbox.env")
    values = {k: env[k] for k in ("AIAS_SANDBOX_BACKUP_DATABASE_URL", "AIAS_SANDBOX_SCRATCH_DATABASE_URL")}
    result = run(RUNBOOK, "-p", "create=true")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert {"BACKUP_CREATED", "BACKUP_VERIFIED"} <= result.codes.keys()
    assert not leaks(values, result.output, result.proc.stdout, result.proc.stderr)
    assert result.verdict["redactions"] == 0, "nothing had to be redacted: it was never written"


def test_missing_pg_dump_is_a_finding_not_a_traceback(sandbox, monkeypatch):
    monkeypatch.setattr(backups, "find_tools", lambda: (None, ["/opt/nowhere/bin", "PATH"]))
    env = load_environment("sandbox")
    made = checks.created(backups.create(env, "aias-runbooks/test"))
    assert made.code == "BACKUP_TOOLS_MISSING" and made.severity.value == "UNKNOWN" and "/opt/nowhere" in made.title
    meta, _ = backups.chosen(backup_folder())
    checked = checks.verified(backups.verify(env, meta, "aias-runbooks/test"))
    assert checked.code == "BACKUP_TOOLS_MISSING" and "pg_restore" in checked.title


@pytest.mark.parametrize(("age_hours", "code", "severity"), [
    (23.9, "BACKUP_OK", "OK"), (30, "BACKUP_STALE", "WARNING"), (49, "BACKUP_STALE", "CRITICAL"),
    (None, "BACKUP_STALE", "CRITICAL")])
def test_stale_is_graded_by_the_thresholds(age_hours, code, severity):
    rows = [] if age_hours is None else [{"backup": "b.dump", "age_hours": age_hours, "complete": True}]
    listed = pd.DataFrame(rows, columns=backups.LISTING_COLUMNS)
    judged = checks.freshness(listed, load_thresholds())
    assert (judged.code, judged.severity.value) == (code, severity)


def test_a_clean_restore_of_a_file_that_is_no_dump_says_so_and_changes_nothing(sandbox, tmp_path):
    """Reading the dump's table of contents fails (a truncated or foreign file): one complaint, no traceback, and
    the target's schemas untouched."""
    tools, _ = backups.find_tools()
    bogus = tmp_path / "not-a-dump.dump"
    bogus.write_text("PGDMP? no: a text file\n")
    grants = _schema_grants(["public", "auth"])
    complaint = backups.restore(tools, backup_secret(), bogus, "aias-runbooks/test", clean=True)
    assert complaint and complaint.startswith("nothing restored:"), complaint
    assert _schema_grants(["public", "auth"]) == grants
