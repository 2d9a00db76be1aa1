"""database-health's cache hit ratio judged on a recent window (issue 24, point 4): index misses made during the
run name the index that holds them; a quiet window falls back to the figures since the statistics reset, with
their age; a bulk load's misses are blamed on the relation that holds them, never on a 3-block table; and, marked
slow, the issue's own complaint on `sandbox up --scale large`."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from aias_runbooks.checks import db_health
from aias_runbooks.sandbox.platform.database.stats import FLUSH_STATS_SQL, STATS_RESET_SQL
from aias_runbooks.sources.cache import CacheWindow
from aias_runbooks.thresholds import load_thresholds

from ..helpers import Run, cli, finding, free_port_base, sandbox_dsn

PROBE = "scratch.cache_probe_id_idx"


@pytest.fixture
def index_misses(sandbox):
    """While it lasts, one index is read from disk over and over: rebuilt (a REINDEX writes its pages around
    shared buffers), then read whole by an index-only scan, so every one of its pages is a miss (idx_blks_read)."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS scratch")
        conn.execute("CREATE TABLE scratch.cache_probe AS SELECT g AS id FROM generate_series(1, 200000) AS g")
        conn.execute("CREATE INDEX cache_probe_id_idx ON scratch.cache_probe (id)")
        conn.execute("VACUUM (ANALYZE) scratch.cache_probe")   # the visibility map: index-only, no heap fetches
    stop = threading.Event()
    rounds: list[int] = []

    def miss() -> None:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")
            conn.execute("SET enable_bitmapscan = off")
            while not stop.is_set():
                conn.execute(f"REINDEX INDEX {PROBE}")
                conn.execute("SELECT count(*) FROM (SELECT id FROM scratch.cache_probe ORDER BY id) AS s").fetchone()
                rounds.append(1)

    worker = threading.Thread(target=miss, daemon=True)
    worker.start()
    try:
        yield rounds
    finally:
        stop.set()
        worker.join(timeout=30)
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("DROP SCHEMA scratch CASCADE")
            conn.execute(FLUSH_STATS_SQL)
            conn.execute(STATS_RESET_SQL)   # the next test starts from a clean cache ratio


def test_index_misses_within_the_window_name_that_index(run, index_misses):
    result = run("database-health")
    assert index_misses, "the workload ran during the run"
    cache = finding(result, "DB_CACHE_HIT_LOW")
    assert cache["severity"] == "WARNING", result.codes
    evidence = cache["evidence"]
    assert evidence["judged_on"] == "window" and evidence["window_s"] == 5, evidence
    assert evidence["block_accesses_in_window"] >= 5000
    assert evidence["culprit"]["relation"] == PROBE and evidence["culprit"]["kind"] == "index"
    assert evidence["culprit"]["table"] == "scratch.cache_probe"
    assert list(evidence["indexes_read_from_disk"])[0] == PROBE
    assert evidence["indexes_read_from_disk"][PROBE]["share_of_misses_pct"] > 50
    assert evidence["index_hit_pct"] < 99
    assert f"index {PROBE}" in cache["title"] and "over 5." in cache["title"], cache["title"]
    assert "scratch.cache_probe" in cache["next_steps"][0]
    measures = {m["name"]: m for m in cache["measures"]}
    assert measures["index_hit"]["value"] == evidence["index_hit_pct"]


def test_a_quiet_window_is_judged_since_the_reset_with_its_age(run, sandbox):
    result = run("database-health", "-p", "cache_window_s=1")
    cache = next(f for f in result.verdict["findings"] if f["code"].startswith("DB_CACHE_HIT"))
    evidence = cache["evidence"]
    assert evidence["window_s"] == 1 and evidence["window"].startswith("1.")
    if evidence["judged_on"] != "window":
        assert evidence["judged_on"] == "since the statistics reset"
        assert "since the statistics reset" in cache["title"] and evidence["stats_age"] in cache["title"]
    assert evidence["stats_since"].endswith("UTC") or evidence["stats_since"] == "never reset"


@pytest.mark.parametrize("seconds", ["0", "301"])
def test_the_window_is_bounded(run, seconds):
    result = run("database-health", "-p", f"cache_window_s={seconds}")
    assert result.proc.returncode == 3 and "cache_window_s" in result.proc.stderr


def _relations(rows: list[tuple[str, str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": k, "relid": n, "relation": r, "table_name": t, "hits": h, "reads": m}
                         for n, (k, r, t, h, m) in enumerate(rows)])


def test_a_bulk_load_is_blamed_on_the_index_holding_its_misses_not_a_3_block_table():
    """The issue's figures: index hit 41 % since the reset, 1.3 M blocks read by the load into one table's
    indexes, 3 heap blocks read from supabase_migrations.schema_migrations; a quiet window after it."""
    migrations = "supabase_migrations.schema_migrations"
    load = _relations([("table", migrations, migrations, 40, 3),
                       ("table", "public.api_requests", "public.api_requests", 2_000_000, 0),
                       ("index", "public.api_requests_pkey", "public.api_requests", 600_000, 1_000_000),
                       ("index", "public.api_requests_created_at_idx", "public.api_requests", 300_000, 300_000),
                       ("index", "supabase_migrations.schema_migrations_pkey",
                        migrations, 10, 2)])
    quiet = load.copy()
    quiet.loc[1, "hits"] += 120
    now = datetime.now(timezone.utc)
    recent = CacheWindow(5, now, now, load, quiet, "2026-12-07 20:00:00 UTC", 600.0)
    (cache,) = db_health.cache_hit(recent, load_thresholds())
    assert cache.code == "DB_CACHE_HIT_OK", "a quiet window is not judged on what the load left since the reset"
    assert cache.evidence["judged_on"] == "since the statistics reset" and cache.evidence["stats_age"] == "10 min"
    assert cache.evidence["culprit"]["relation"] == "public.api_requests_pkey"
    assert cache.title.startswith("Not judged") and "schema_migrations" not in cache.title
    assert "10 min ago" in cache.title and "public.api_requests_pkey" in cache.title
    assert "tables_read_from_disk" not in cache.evidence, "the heap is at target: no table is blamed"
    # the same load seen in a window with the platform reading from memory again: OK, on the window
    busy = quiet.copy()
    busy.loc[1, "hits"] += 20_000
    (ok,) = db_health.cache_hit(CacheWindow(5, now, now, quiet, busy, "2026-12-07 20:00:00 UTC", 600.0),
                                load_thresholds())
    assert ok.code == "DB_CACHE_HIT_OK" and ok.evidence["judged_on"] == "window"


@pytest.mark.slow
def test_after_a_large_bulk_load_no_3_block_table_is_blamed():
    """The issue's complaint, reproduced: `sandbox up --scale large`, then database-health at once."""
    folder = Path(tempfile.mkdtemp(prefix="aias-test-large-cache-"))
    folder.chmod(0o755)
    env = os.environ | {"AIAS_SANDBOX_DIR": str(folder), "AIAS_SANDBOX_PORT_BASE": str(free_port_base())}
    try:
        up = cli("sandbox", "up", "--scale", "large", timeout=900, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        result = Run(cli("run", "database-health", "--output", str(folder / "output"), env=env), folder / "output")
        cache = next(f for f in result.verdict["findings"] if f["code"].startswith("DB_CACHE_HIT"))
        evidence = cache["evidence"]
        assert "stats_since" in evidence and "judged_on" in evidence
        if cache["code"] == "DB_CACHE_HIT_LOW":
            culprit = evidence["culprit"]
            named = {**evidence.get("tables_read_from_disk", {}), **evidence.get("indexes_read_from_disk", {})}
            judged = named[culprit["relation"]]["blocks_read"]
            assert culprit["blocks_read"] == judged and culprit["blocks_read"] > 3, culprit
            assert "schema_migrations" not in culprit["relation"], cache["title"]
    finally:
        cli("sandbox", "down", env=env)
        shutil.rmtree(folder, ignore_errors=True)
