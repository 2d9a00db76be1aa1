"""database-health's slow failures through the runner against the sandbox: transaction ID wraparound, an inactive
replication slot, a sequence near its column's maximum, invalid and duplicate indexes. Each scenario gives its code
and severity and names the culprit; the healthy sandbox stays OK; a sequence the monitoring role may not read is
UNKNOWN with the grant that allows it, never a crash."""

from __future__ import annotations

import psycopg

from ..helpers import no_problem, sandbox_dsn

UPKEEP_OK = {"DB_XID_AGE_OK", "DB_REPLICATION_SLOTS_OK", "DB_SEQUENCES_OK", "DB_INDEXES_OK"}


def _finding(result, code: str) -> dict:
    return next(f for f in result.verdict["findings"] if f["code"] == code)


def _measure(finding: dict, name: str) -> dict:
    return next(m for m in finding["measures"] if m["name"] == name)


def test_healthy_sandbox_is_ok_on_every_slow_failure(run):
    result = run("database-health")
    no_problem(result)
    assert {code: result.codes.get(code) for code in UPKEEP_OK} == dict.fromkeys(UPKEEP_OK, "OK"), result.codes
    xid = _finding(result, "DB_XID_AGE_OK")
    assert _measure(xid, "xid_used")["value"] < 50 and "postgres" in xid["evidence"]["databases"]
    assert _finding(result, "DB_REPLICATION_SLOTS_OK")["evidence"]["slots"] == {}


def test_an_inactive_replication_slot_is_named_with_the_wal_it_retains(run, scenario):
    scenario("replication-slot-inactive")
    result = run("database-health")
    assert result.codes["DB_REPLICATION_SLOT_INACTIVE"] == "WARNING", result.codes
    assert result.proc.returncode == 1
    slot = _finding(result, "DB_REPLICATION_SLOT_INACTIVE")
    assert slot["evidence"]["culprit"] == "analytics_sync" and slot["evidence"]["slots"] == ["analytics_sync"]
    assert slot["title"].startswith("Replication slot analytics_sync (logical, pgoutput) is inactive")
    retained = _measure(slot, "retained_wal")
    assert retained["unit"] == "MB" and retained["value"] >= 16 and retained["warning"] == 16
    assert slot["evidence"]["max_slot_wal_keep_mb"] == -1 and "until the disk is full" in slot["title"]
    assert "SELECT pg_drop_replication_slot('analytics_sync')" in slot["next_steps"][0]
    assert any("max_slot_wal_keep_size" in step for step in slot["next_steps"])


def test_a_sequence_near_its_integer_columns_maximum_is_critical(run, scenario):
    scenario("sequence-near-max")
    result = run("database-health")
    assert result.codes["DB_SEQUENCE_NEAR_MAX"] == "CRITICAL", result.codes
    assert result.proc.returncode == 2
    near = _finding(result, "DB_SEQUENCE_NEAR_MAX")
    assert near["evidence"]["culprit"] == "public.invoice_imports_id_seq"
    assert near["evidence"]["column"] == "public.invoice_imports.id"
    seq = near["evidence"]["sequences"]["public.invoice_imports_id_seq"]
    assert (seq["column_type"], seq["sequence_type"], seq["limit"]) == ("integer", "bigint", 2**31 - 1), \
        "judged by the integer column it feeds, not by the bigint sequence's own maximum"
    assert 93 < _measure(near, "used")["value"] < 94
    assert "public.invoice_imports_id_seq" in near["title"] and "2,147,483,647" in near["title"]
    assert "ALTER TABLE public.invoice_imports ALTER COLUMN id TYPE bigint" in near["next_steps"][0]


def test_a_sequence_the_monitor_may_not_read_is_unknown_with_the_grant(run, scenario):
    scenario("sequence-near-max")
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON SEQUENCE public.invoice_imports_id_seq FROM aias_monitor")
    result = run("database-health")   # the scenario's reset drops the sequence, the grant with it
    assert result.codes["DB_SEQUENCE_UNREADABLE"] == "UNKNOWN", result.codes
    assert "DB_SEQUENCE_NEAR_MAX" not in result.codes and "RUNBOOK_ERROR" not in result.codes
    assert result.proc.returncode == 3
    unread = _finding(result, "DB_SEQUENCE_UNREADABLE")
    assert unread["evidence"]["sequences"] == {"public.invoice_imports_id_seq": "public.invoice_imports.id"}
    assert unread["next_steps"][0].startswith("GRANT SELECT ON SEQUENCE public.invoice_imports_id_seq TO aias_monitor;")


def test_an_invalid_and_a_duplicate_index_are_named(run, scenario):
    scenario("broken-indexes")
    result = run("database-health")
    assert result.codes["DB_INDEX_INVALID"] == "WARNING" and result.codes["DB_INDEX_DUPLICATE"] == "WARNING"
    assert result.proc.returncode == 1
    invalid = _finding(result, "DB_INDEX_INVALID")
    assert invalid["evidence"]["culprit"] == "public.workflows_name_key"
    assert invalid["evidence"]["table"] == "public.workflows" and invalid["evidence"]["indexes"][
        "public.workflows_name_key"]["unique"] is True
    assert invalid["title"].startswith("Index public.workflows_name_key on public.workflows is invalid")
    assert invalid["next_steps"][0].startswith("DROP INDEX CONCURRENTLY public.workflows_name_key;")
    duplicate = _finding(result, "DB_INDEX_DUPLICATE")
    assert duplicate["evidence"]["culprit"] == "public.api_keys_tenant_idx"
    [(_, dup)] = duplicate["evidence"]["duplicates"].items()
    assert (dup["table"], dup["keep"], dup["drop"]) == ("public.api_keys", "public.api_keys_tenant_id_idx",
                                                        ["public.api_keys_tenant_idx"])
    assert "public.api_keys_tenant_idx repeats public.api_keys_tenant_id_idx" in duplicate["title"]
    assert duplicate["next_steps"] == ["DROP INDEX CONCURRENTLY public.api_keys_tenant_idx; (keep "
                                       "public.api_keys_tenant_id_idx), through a migration."]


def test_transaction_id_age_past_the_warning_line_names_the_table(run, scenario):
    scenario("xid-wraparound")
    result = run("database-health")
    assert result.codes["DB_XID_WRAPAROUND"] == "WARNING", result.codes
    assert result.proc.returncode == 1
    xid = _finding(result, "DB_XID_WRAPAROUND")
    assert xid["evidence"]["culprit"] == "public.events_archive_2024" and xid["evidence"]["culprit_kind"] == "table"
    assert xid["evidence"]["freeze_max_age"] == 100_000 and xid["evidence"]["age"] >= 60_000
    used = _measure(xid, "xid_used")
    assert 60 <= used["value"] < 80 and (used["warning"], used["critical"]) == (50, 80)
    assert xid["title"].startswith("Table public.events_archive_2024: transaction ID age ")
    assert "its own storage parameter" in xid["title"]
    assert "VACUUM (FREEZE, VERBOSE) public.events_archive_2024" in xid["next_steps"][-1]
    assert list(xid["evidence"]["oldest_tables"])[0] == "public.events_archive_2024"


def test_an_old_snapshot_holding_the_horizon_back_is_named_first(run, scenario):
    """A transaction whose snapshot predates the consumed transaction IDs keeps vacuum from freezing past it: the
    finding names that session, and ending it is the first step (a VACUUM FREEZE before it would freeze nothing)."""
    with psycopg.connect(sandbox_dsn(), application_name="aias-test/old-snapshot") as old:
        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT 1").fetchone()   # the snapshot is taken: this session's xmin holds the horizon
        pid = old.info.backend_pid
        scenario("xid-wraparound")
        result = run("database-health")
        old.rollback()
    xid = _finding(result, "DB_XID_WRAPAROUND")
    holder = f"pid {pid} (supabase_admin, aias-test/old-snapshot)"
    assert list(xid["evidence"]["horizon_held_by"])[0] == holder, xid["evidence"].get("horizon_held_by")
    assert xid["evidence"]["horizon_held_by"][holder]["xmin_age"] >= 60_000
    assert xid["title"].endswith(f"; the horizon is held back by session {holder}.")
    assert xid["next_steps"][0].startswith(f"End the transaction of session {holder}")
