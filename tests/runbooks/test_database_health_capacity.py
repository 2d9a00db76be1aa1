"""database-health's capacity checks through the runner against the sandbox: table and index bloat (estimated, the
method named). The bloated-table scenario gives its codes and severity and names the table and the index; the
healthy sandbox stays OK; a large table whose statistics row level security hides from the monitoring role is
UNKNOWN with who can estimate it, never a guess."""

from __future__ import annotations

import os
import shutil

import psycopg

from aias_runbooks.checks import db_capacity
from aias_runbooks.settings import load_environment
from aias_runbooks.sources import database
from aias_runbooks.thresholds import load_thresholds

from ..helpers import ROOT, Run, cli, no_problem, sandbox_dsn, wait_for

CAPACITY_OK = {"DB_BLOAT_OK"}


def _finding(result, code: str) -> dict:
    return next(f for f in result.verdict["findings"] if f["code"] == code)


def _measure(finding: dict, name: str) -> dict:
    return next(m for m in finding["measures"] if m["name"] == name)


def test_healthy_sandbox_is_ok_on_capacity(run):
    result = run("database-health")
    no_problem(result)
    assert {code: result.codes.get(code) for code in CAPACITY_OK} == dict.fromkeys(CAPACITY_OK, "OK"), result.codes
    ok = _finding(result, "DB_BLOAT_OK")
    assert "ioguix" in ok["evidence"]["method"] and ok["evidence"]["estimated"]["indexes"] > 0
    assert _measure(ok, "table_bloat")["warning"] == 50 and _measure(ok, "index_bloat")["critical"] == 90


def test_a_purged_table_and_its_primary_key_are_named_as_bloated(run, scenario):
    scenario("table-bloat")
    result = run("database-health")
    assert result.codes["DB_TABLE_BLOAT"] == "WARNING" and result.codes["DB_INDEX_BLOAT"] == "WARNING", result.codes
    assert result.proc.returncode == 1
    table = _finding(result, "DB_TABLE_BLOAT")
    assert table["evidence"]["culprit"] == "public.usage_samples" and "ioguix" in table["evidence"]["method"]
    assert table["title"].startswith("Table public.usage_samples wastes an estimated ")
    share, wasted = _measure(table, "table_bloat"), _measure(table, "table_wasted")
    assert 75 <= share["value"] < 85 and (share["warning"], share["critical"]) == (50, 90)
    assert wasted["unit"] == "MB" and wasted["value"] >= 50 and wasted["warning"] == 50
    # every column is fixed-width: the widths come from the types, though RLS hides the table's pg_stats
    assert table["evidence"]["tables"]["public.usage_samples"]["widths_from"] == "column types"
    assert "VACUUM public.usage_samples" in table["next_steps"][0] and "pg_repack" in table["next_steps"][-1]
    index = _finding(result, "DB_INDEX_BLOAT")
    assert index["evidence"]["culprit"] == "public.usage_samples_pkey"
    assert index["title"].startswith("Index public.usage_samples_pkey on public.usage_samples wastes an estimated ")
    assert 75 <= _measure(index, "index_bloat")["value"] < 85 and _measure(index, "index_wasted")["value"] >= 20
    assert index["next_steps"] == ["REINDEX INDEX CONCURRENTLY public.usage_samples_pkey; (online; it needs room "
                                   "for a second copy while it builds)."]


def test_a_large_table_whose_statistics_rls_hides_is_unknown(run, scenario):
    """A text column's width is known from pg_stats only, which row level security hides from the monitoring role:
    the table is not estimated, and the finding says why and who can estimate it."""
    scenario("table-bloat")
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("ALTER TABLE public.usage_samples ADD COLUMN note text")
        conn.execute("ANALYZE public.usage_samples")
    result = run("database-health")   # the scenario's reset drops the table, the column with it
    assert result.codes["DB_BLOAT_UNESTIMATED"] == "UNKNOWN", result.codes
    assert "DB_TABLE_BLOAT" not in result.codes and "RUNBOOK_ERROR" not in result.codes
    blind = _finding(result, "DB_BLOAT_UNESTIMATED")
    assert blind["evidence"]["relations"]["public.usage_samples"]["why"] == \
        "row level security hides its statistics from aias_monitor"
    assert "supabase inspect db bloat" in blind["next_steps"][0]
    assert result.codes["DB_INDEX_BLOAT"] == "WARNING", "the bigint key's width is still known from its type"


def test_the_statistics_age_is_stated_and_young_statistics_judge_no_index_unused(run):
    result = run("database-health")
    usage = _finding(result, "DB_INDEX_USAGE_OK")
    assert usage["severity"] == "OK" and usage["evidence"]["counted_from"] == "the statistics reset"
    assert 0 <= usage["evidence"]["stats_age_days"] < 7 and _measure(usage, "stats_age")["unit"] == "days"


def test_an_index_no_scan_used_is_named_once_the_statistics_are_old_enough(sandbox):
    """The real query as the monitoring role, judged by the check directly: statistics a few minutes old (the
    sandbox's) are context at the default 7 days and a finding naming the index when the minimum age is 0."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("CREATE INDEX aias_test_unused_idx ON public.api_requests (status, duration_ms)")
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/test/unused")
    try:
        unused = database.query(engine, "unused_indexes")
    finally:
        engine.dispose()
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("DROP INDEX public.aias_test_unused_idx")
    rules = load_thresholds({"db_capacity": {"unused_index_table_min_mb": 1}})
    [young] = db_capacity.unused_indexes(unused, rules)
    assert young.code == "DB_INDEX_USAGE_OK" and "too young to call them unused" in young.title
    assert "public.aias_test_unused_idx" in young.evidence["not_yet_judged"]
    [old] = db_capacity.unused_indexes(unused, load_thresholds({"db_capacity": {"unused_index_table_min_mb": 1,
                                                                                "unused_index_min_days": 0}}))
    assert old.code == "DB_INDEX_UNUSED" and old.severity.value == "WARNING"
    assert "public.aias_test_unused_idx" in old.evidence["indexes"]
    assert old.evidence["indexes"]["public.aias_test_unused_idx"]["table"] == "public.api_requests"
    assert "since the statistics reset" in old.title
    assert any("DROP INDEX CONCURRENTLY public.aias_test_unused_idx;" in step for step in old.next_steps)


def test_role_settings_and_connections_are_shown_when_nothing_is_wrong(run):
    result = run("database-health")
    roles = _finding(result, "DB_ROLES_OK")
    assert roles["evidence"]["role_settings"]["anon"] == {"statement_timeout": "3s"}
    assert roles["evidence"]["role_settings"]["authenticated"] == {"statement_timeout": "8s"}
    app = roles["evidence"]["connections"]["aias_app"]
    assert app["own_limit"] is False and app["connections"] >= 1 and "aias-api" in app["applications"]
    assert _measure(roles, "role_connections")["warning"] == 80


def test_a_role_near_its_connection_limit_is_named_with_its_application(run, sandbox):
    """A login role with CONNECTION LIMIT 5 holding 4 sessions (80 %): WARNING, the role and application named."""
    password = "aias-test-limited-pw"
    with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE aias_test_limited LOGIN PASSWORD '{password}' CONNECTION LIMIT 5")
    dsn = psycopg.conninfo.make_conninfo(sandbox_dsn(), user="aias_test_limited", password=password,
                                         application_name="aias-test/report-export")
    sessions = [psycopg.connect(dsn) for _ in range(4)]
    try:
        result = run("database-health")
    finally:
        for session in sessions:
            session.close()
        with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
            admin.execute("DROP ROLE aias_test_limited")
    assert result.codes["DB_ROLE_CONNECTIONS_HIGH"] == "WARNING", result.codes
    high = _finding(result, "DB_ROLE_CONNECTIONS_HIGH")
    assert high["evidence"]["culprit"] == "aias_test_limited"
    assert high["evidence"]["application"] == "aias-test/report-export"
    assert high["title"].startswith("Role aias_test_limited holds 4 of its 5 connections (80 %, its own CONNECTION "
                                    "LIMIT), most from application aias-test/report-export (4)")
    assert _measure(high, "role_connections")["value"] == 80


def test_an_api_role_without_a_statement_timeout_is_a_warning(run, sandbox):
    with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
        admin.execute("ALTER ROLE authenticated SET statement_timeout = 0")
    try:
        result = run("database-health")
    finally:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
            admin.execute("ALTER ROLE authenticated SET statement_timeout = '8s'")
    assert result.codes["DB_ROLE_STATEMENT_TIMEOUT_OFF"] == "WARNING", result.codes
    off = _finding(result, "DB_ROLE_STATEMENT_TIMEOUT_OFF")
    assert off["evidence"]["culprit"] == "authenticated" and off["evidence"]["roles"] == ["authenticated"]
    assert off["title"].startswith("API role authenticated has statement_timeout 0 set on the role")
    assert off["next_steps"][0].startswith("ALTER ROLE authenticated SET statement_timeout = '8s';")


def test_sizes_are_shown_not_judged_without_a_disk_budget(run):
    result = run("database-health")
    size = _finding(result, "DB_DISK_OK")
    assert size["evidence"]["budget_gb"] is None and "not judged" in size["title"]
    assert size["evidence"]["databases_mb"]["postgres"] > 0 and size["evidence"]["wal_counted_mb"] == 1024.0
    assert size["evidence"]["wal_actual_size"] == "GRANT pg_monitor TO aias_monitor; lets it read pg_ls_waldir"
    assert result.codes["DB_CHECKPOINTS_OK"] == "OK"


def test_a_disk_budget_judges_the_databases_and_wal_against_it(sandbox):
    """The real sizes as the monitoring role, judged against budgets the profile's disk_budget_gb could hold."""
    engine = database.connect(load_environment("sandbox").secret("database_url"), "aias-runbooks/test/disk")
    try:
        usage = database.query(engine, "disk_usage")
    finally:
        engine.dispose()
    used_gb = (usage["database_bytes"].sum() + usage["max_wal_bytes"].iloc[0]) / 1024**3
    rules = load_thresholds()
    [roomy] = db_capacity.disk(usage, 8, rules)
    assert roomy.code == "DB_DISK_OK" and "of the 8 GB disk budget" in roomy.title
    [tight] = db_capacity.disk(usage, round(used_gb / 0.85, 3), rules)
    assert tight.code == "DB_DISK_BUDGET_HIGH" and tight.severity.value == "WARNING"
    assert tight.evidence["culprit"] == "postgres" and "database postgres holds" in tight.title
    assert 84 <= tight.measures[0].value <= 86 and (tight.measures[0].warning, tight.measures[0].critical) == (80, 90)
    [full] = db_capacity.disk(usage, round(used_gb / 0.95, 3), rules)
    assert full.severity.value == "CRITICAL"


def test_requested_checkpoints_are_a_warning(run, sandbox):
    """Ten CHECKPOINT commands are ten requested checkpoints against the few timed ones of a young sandbox."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_stat_reset_shared('bgwriter')")
        for _ in range(10):
            admin.execute("CHECKPOINT")
        wait_for(lambda: admin.execute("SELECT checkpoints_req FROM pg_stat_bgwriter").fetchone()[0] >= 10,
                 timeout=10, what="ten requested checkpoints counted")
    try:
        result = run("database-health")
    finally:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_stat_reset_shared('bgwriter')")
    assert result.codes["DB_CHECKPOINTS_REQUESTED"] == "WARNING", result.codes
    points = _finding(result, "DB_CHECKPOINTS_REQUESTED")
    assert points["evidence"]["requested"] >= 10 and points["evidence"]["max_wal_size"] == "1GB"
    assert _measure(points, "checkpoints_requested")["value"] >= 30
    assert "Raise max_wal_size" in points["next_steps"][0]


def test_a_profiles_disk_budget_judges_the_run_and_a_bad_one_is_one_line(sandbox, tmp_path):
    """disk_budget_gb in a profile: 1.1 GB against the sandbox's databases plus 1 GB of max_wal_size is CRITICAL;
    a budget that is not a number stops the run with one line naming what is valid."""
    root = tmp_path / "home"
    shutil.copytree(ROOT / "params", root / "params")
    (root / "notebooks").symlink_to(ROOT / "notebooks")
    (root / "params" / "environments" / "tight-disk.yaml").write_text("extends: sandbox\ndisk_budget_gb: 1.1\n")
    (root / "params" / "environments" / "bad-disk.yaml").write_text("extends: sandbox\ndisk_budget_gb: lots\n")
    env = {**os.environ, "AIAS_HOME": str(root)}
    bad = cli("run", "database-health", "--env", "bad-disk", "--output", str(tmp_path / "bad"), env=env)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1, bad.stderr
    assert "environment 'bad-disk': disk_budget_gb 'lots' is not valid; valid: a positive number of GB" in bad.stderr
    tight = Run(cli("run", "database-health", "--env", "tight-disk", "--output", str(tmp_path / "out"), env=env),
                tmp_path / "out")
    assert tight.codes["DB_DISK_BUDGET_HIGH"] == "CRITICAL", tight.codes
    high = _finding(tight, "DB_DISK_BUDGET_HIGH")
    assert high["evidence"]["culprit"] == "postgres" and high["evidence"]["budget_gb"] == 1.1
    assert "of the 1.1 GB disk budget; database postgres holds" in high["title"]
