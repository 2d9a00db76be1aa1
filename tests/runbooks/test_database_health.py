"""database-health through the runner against the sandbox: quiet when healthy, next steps that work (autovacuum
disabled, tables read from disk, a table autovacuum cannot clean), RLS gaps linted."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest

from aias_runbooks.sandbox.platform.database.stats import FLUSH_STATS_SQL, STATS_RESET_SQL
from aias_runbooks.thresholds import load_thresholds

from ..helpers import monitor_connections, no_problem, sandbox_dsn


def test_healthy_sandbox_has_no_database_problem(run):
    no_problem(run("database-health"))


def test_a_diagnosis_run_opens_exactly_one_connection(run, sandbox):
    assert monitor_connections(sandbox, run("database-health")) == 1


def test_autovacuum_disabled_is_named_with_the_re_enable_step(run, scenario):
    scenario("autovacuum-disabled")   # observable the moment `sandbox up` returns: no waiting
    result = run("database-health")
    assert result.codes["DB_VACUUM_LAG"] == "WARNING", result.codes
    assert result.proc.returncode == 1
    lag = next(f for f in result.verdict["findings"] if f["code"] == "DB_VACUUM_LAG")
    assert lag["evidence"]["autovacuum_disabled"] == {"public.import_staging": "autovacuum_enabled=false"}
    assert lag["evidence"]["dead_rows"]["public.import_staging"] >= 3000
    assert "autovacuum is disabled" in lag["title"]
    assert lag["next_steps"][0].startswith("Re-enable autovacuum on public.import_staging")
    assert "ALTER TABLE public.import_staging RESET (autovacuum_enabled)" in lag["next_steps"][0]
    assert not any("scale_factor" in step and "import_staging" in step for step in lag["next_steps"]), \
        "tuning is not the fix for a disabled one"


@pytest.fixture
def cold_tables(sandbox):
    """Two tables larger than a quarter of shared_buffers: a sequential scan of one goes through a small ring
    of buffers, so every scan reads its blocks from outside the cache (real heap_blks_read).
    zz_cold_big is scanned three times, aa_cold_other once: read order differs from alphabetical order."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS scratch")
        for name in ("zz_cold_big", "aa_cold_other"):
            # autovacuum off: its pass over a new table would read both alike during the run's cache window
            conn.execute(f"CREATE TABLE scratch.{name} WITH (autovacuum_enabled = false) AS SELECT g AS id, "
                         "repeat('x', 200) AS pad FROM generate_series(1, 200000) AS g")
        conn.execute("SET max_parallel_workers_per_gather = 0")
        for name, scans in (("zz_cold_big", 3), ("aa_cold_other", 1)):
            for _ in range(scans):
                conn.execute(f"SELECT count(*) FROM scratch.{name}").fetchone()
        conn.execute(FLUSH_STATS_SQL)
    try:
        yield
    finally:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("DROP SCHEMA scratch CASCADE")
            conn.execute(FLUSH_STATS_SQL)
            conn.execute(STATS_RESET_SQL)   # the next test starts from a clean cache ratio


def test_cache_misses_before_the_window_are_shown_ranked_and_not_judged(run, cold_tables):
    for _ in range(3):   # the reads were made before the run: judged since the reset, unless the platform's own
        result = run("database-health", "-p", "cache_window_s=1")   # traffic filled the window (then run again)
        judged = next(f for f in result.verdict["findings"] if f["code"].startswith("DB_CACHE_HIT"))
        if judged["evidence"]["judged_on"] != "window":
            break
    # the reads came before the window: shown since the reset, with the tables ranked, and not judged
    assert result.codes["DB_CACHE_HIT_OK"] == "OK", result.codes
    cache = next(f for f in result.verdict["findings"] if f["code"] == "DB_CACHE_HIT_OK")
    assert cache["evidence"]["judged_on"] == "since the statistics reset" and cache["evidence"]["window_s"] == 1
    tables = cache["evidence"]["tables_read_from_disk"]
    assert list(tables)[:2] == ["scratch.zz_cold_big", "scratch.aa_cold_other"], "ranked by blocks read"
    assert tables["scratch.zz_cold_big"]["blocks_read"] > tables["scratch.aa_cold_other"]["blocks_read"] > 0
    assert cache["title"].startswith("Not judged") and "scratch.zz_cold_big" in cache["title"]
    text = (result.folder / "verdict.json").read_text()
    assert text.index('"scratch.zz_cold_big"') < text.index('"scratch.aa_cold_other"'), "verdict.json keeps order"
    for record in (result.output / "catalog" / "runs").glob("*/*.json"):
        assert list(json.loads(record.read_text()))[:3] == ["run_id", "runbook", "env"], "record keys are not sorted"


def _vacuum_stats(conn: psycopg.Connection) -> pd.DataFrame:
    """sql/vacuum_stats.sql as the runbook runs it, once this session's table statistics are flushed."""
    from sqlalchemy import create_engine

    from aias_runbooks.sources import database

    conn.execute(FLUSH_STATS_SQL)
    conn.execute("SELECT 1")   # the flush happens once the session is idle; this round trip waits for it
    engine = create_engine(sandbox_dsn().replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        return database.query(engine, "vacuum_stats", limit=1, lag_factor=2)
    finally:
        engine.dispose()


def test_toast_autovacuum_disabled_is_read_from_the_toast_table(sandbox):
    """toast.autovacuum_enabled=false is stored on the TOAST table's reloptions: the real query finds it there."""
    from aias_runbooks.checks import db_health

    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn, psycopg.connect(sandbox_dsn()) as snapshot:
        conn.execute("CREATE TABLE public.toast_off (id int, body text) WITH (toast.autovacuum_enabled = off)")
        try:
            conn.execute("INSERT INTO public.toast_off SELECT g, 'x' FROM generate_series(1, 1000) AS g")
            # an older snapshot keeps the dead rows counted even if autovacuum visits the main table meanwhile
            snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snapshot.execute("SELECT count(*) FROM public.toast_off").fetchone()
            conn.execute("UPDATE public.toast_off SET id = id + 1")
            stats = _vacuum_stats(conn)
        finally:
            snapshot.rollback()
            conn.execute("DROP TABLE public.toast_off")
    row = stats[stats["table_name"] == "public.toast_off"].iloc[0]
    assert bool(row["toast_autovacuum_disabled"]) and not bool(row["autovacuum_disabled"])
    [lag] = db_health.vacuum(stats[stats["table_name"] == "public.toast_off"], load_thresholds())
    assert lag.evidence["autovacuum_disabled"] == {"public.toast_off": "toast.autovacuum_enabled=false"}
    assert "RESET (toast.autovacuum_enabled)" in lag.next_steps[0] and "TOAST table" in lag.title


def test_a_table_behind_is_named_in_its_own_step_and_a_small_busy_one_is_not_lag(sandbox):
    """Next to a table with autovacuum disabled, a table autovacuum cannot clean (an old snapshot holds its dead
    rows) gets the vacuum-and-tune step by name; a small table with a few hundred dead rows is not reported."""
    from aias_runbooks.checks import db_health

    tables = {"public.zz_off": "WITH (autovacuum_enabled = false)", "public.zz_behind": "", "public.zz_small": ""}
    rows = {"public.zz_off": 1500, "public.zz_behind": 5000, "public.zz_small": 300}
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn, psycopg.connect(sandbox_dsn()) as snapshot:
        for name, options in tables.items():
            conn.execute(f"CREATE TABLE {name} (id int) {options}")
        try:
            for name, count in rows.items():
                conn.execute(f"INSERT INTO {name} SELECT generate_series(1, {count})")
            snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snapshot.execute("SELECT count(*) FROM public.zz_behind").fetchone()
            for name in rows:
                conn.execute(f"UPDATE {name} SET id = id + 1")
            stats = _vacuum_stats(conn)
        finally:
            snapshot.rollback()
            for name in tables:
                conn.execute(f"DROP TABLE {name}")
    [lag] = db_health.vacuum(stats[stats["table_name"].isin(list(tables))], load_thresholds())
    assert set(lag.evidence["tables"]) == {"public.zz_off", "public.zz_behind"}, lag.evidence
    assert lag.next_steps[0].startswith("Re-enable autovacuum on public.zz_off")
    [tune] = [step for step in lag.next_steps if "scale_factor" in step]
    assert "public.zz_behind" in tune and "public.zz_off" not in tune


def test_rls_gaps_are_linted(run, scenario):
    scenario("rls-gap")
    result = run("database-health")
    assert result.codes["RLS_DISABLED"] == "CRITICAL" and result.codes["RLS_NO_POLICY"] == "WARNING"
    assert result.proc.returncode == 2
    disabled = next(f for f in result.verdict["findings"] if f["code"] == "RLS_DISABLED")
    assert disabled["evidence"]["tables"] == ["public.debug_webhook_payloads"]
    no_policy = next(f for f in result.verdict["findings"] if f["code"] == "RLS_NO_POLICY")
    # a policy only for our monitoring role is, for the app's users, no policy
    assert no_policy["evidence"]["tables"] == ["public.feature_flags", "public.usage_reports"]
    assert no_policy["evidence"]["policies_only_for"] == {"public.usage_reports": "aias_monitor"}
    assert "public.usage_reports has policies only for aias_monitor" in no_policy["title"]
