"""database-connection-errors and database-health, run through the runner against real faults in the sandbox."""

from __future__ import annotations

import json

import psycopg
import pytest

from .conftest import app_dsn, client_backends, sandbox_dsn, wait_for

PROBLEMS = {"WARNING", "CRITICAL"}


def _leaked_longer_than(seconds: float, sessions: int = 8) -> bool:
    """The leak scenario's sessions have all been idle in transaction for more than `seconds`."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aias-api/export-worker' "
                            "AND state = 'idle in transaction' AND now() - state_change > make_interval(secs => %s)",
                            (seconds,)).fetchone()[0] >= sessions


def _sessions(app: str) -> int:
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0]


@pytest.mark.parametrize("runbook", ["database-connection-errors", "database-health"])
def test_healthy_sandbox_has_no_database_problem(run, runbook):
    result = run(runbook)
    assert result.proc.returncode == 0, result.codes
    assert not PROBLEMS & set(result.codes.values())


def test_connection_leak_is_found_and_dry_run_changes_nothing(run, scenario):
    scenario("db-connection-leak")
    wait_for(lambda: _leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
    result = run("database-connection-errors", "-p", "leak_min_idle_s=2")
    assert result.codes["DB_CONNECTION_LEAK"] == "CRITICAL", result.codes
    assert result.proc.returncode == 2
    leak = next(f for f in result.verdict["findings"] if f["code"] == "DB_CONNECTION_LEAK")
    assert leak["evidence"]["sessions"] == 8 and leak["evidence"]["applications"] == {"aias-api/export-worker": 8}
    assert _sessions("aias-api/export-worker") == 8, "a dry run terminates nothing"
    assert not (result.output / "audit.jsonl").exists()


def test_apply_terminates_only_the_leaked_sessions_and_audits(run, scenario):
    # the application's role, like the leaked sessions: only the criteria, not a privilege, spare them
    with psycopg.connect(app_dsn(), application_name="bystander-idle", autocommit=True), \
            psycopg.connect(app_dsn(), application_name="bystander-other-app") as other:
        other.execute("SELECT 1")            # idle in transaction too, but not the application named
        scenario("db-connection-leak")
        wait_for(lambda: _leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
        result = run("database-connection-errors", "-p", "leak_min_idle_s=2", "-p", "apply=true",
                     "-p", "only_application=aias-api/export-worker", "--operator", "alice", "--incident", "INC-7")
        assert _sessions("bystander-idle") == 1 and _sessions("bystander-other-app") == 1
    assert result.proc.returncode == 2, "the verdict is what was diagnosed before the action"
    assert _sessions("aias-api/export-worker") == 0
    records = [json.loads(line) for line in (result.output / "audit.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["started", "finished"]   # one apply: the attempt, then its outcome
    record = records[1]
    assert record["operator"] == "alice" and record["incident"] == "INC-7" and record["terminated"] == 8
    assert {t["application"] for t in record["targets"]} == {"aias-api/export-worker"}
    assert record["run_id"] == result.verdict["run_id"]


def test_apply_without_operator_is_refused_before_running(run):
    result = run("database-connection-errors", "-p", "apply=true")
    assert result.proc.returncode == 3
    assert "needs an operator" in result.proc.stderr and not result.output.exists()


def test_pool_exhaustion_is_reported_not_crashed(run, scenario):
    scenario("db-pool-exhaustion")
    result = run("database-connection-errors")
    assert result.proc.returncode == 2
    assert result.codes == {"DB_POOL_SATURATED": "CRITICAL"}, result.codes
    finding = result.verdict["findings"][0]
    assert "too many clients" in finding["evidence"]["server_message"]
    assert (result.folder / "report.html").is_file()


def test_blocking_chain_names_the_root_blocker_and_the_ddl_wait(run, scenario):
    scenario("blocking-locks")
    result = run("database-connection-errors", "-p", "long_running_s=1")
    assert result.codes["DB_BLOCKING_LOCKS"] == "CRITICAL" and result.codes["DB_LONG_RUNNING_QUERY"] == "WARNING"
    blocking = next(f for f in result.verdict["findings"] if f["code"] == "DB_BLOCKING_LOCKS")
    # the UPDATE, the migration and the read queued behind it; the app's own reads may be stuck there too
    assert blocking["evidence"]["blocked_sessions"] >= 3 and len(blocking["evidence"]["root_blockers"]) == 1
    assert "aias-api/billing-job" in blocking["title"]
    assert "AccessExclusiveLock on workflows" in blocking["evidence"]["waits"], "relation-level (DDL) waits count"


def test_slow_queries_found_from_pg_stat_statements_and_seq_scans(run, scenario):
    scenario("slow-queries")
    errors = run("database-connection-errors")
    assert errors.codes.get("DB_SLOW_QUERY") in PROBLEMS, errors.codes
    slow = next(f for f in errors.verdict["findings"] if f["code"] == "DB_SLOW_QUERY")
    assert "workflow_executions" in slow["evidence"]["query"]
    health = run("database-health")
    assert health.codes.get("DB_SEQ_SCAN_HOT_TABLE") == "WARNING", health.codes
    hot = next(f for f in health.verdict["findings"] if f["code"] == "DB_SEQ_SCAN_HOT_TABLE")
    assert "public.workflow_executions" in hot["evidence"]["tables"]


def test_without_pg_stat_statements_slow_queries_are_unknown_and_the_rest_runs(run, sandbox):
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
        try:
            result = run("database-connection-errors")
        finally:
            conn.execute("CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions")
    assert result.codes["DB_SLOW_QUERY_UNKNOWN"] == "UNKNOWN"
    assert {"DB_POOL_OK", "DB_NO_LEAKS", "DB_LATENCY_OK"} <= result.codes.keys()
    assert result.proc.returncode == 3


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


@pytest.mark.parametrize("runbook", ["database-connection-errors", "database-health"])
def test_a_diagnosis_run_opens_exactly_one_connection(run, sandbox, runbook):
    result = run(runbook)
    app = f"aias-runbooks/{runbook}/{result.verdict['run_id']}"[:63]
    log = (sandbox / "logs" / "postgres.log").read_text()
    assert log.count(f"connection authorized: user=aias_monitor database=postgres application_name={app}\n") == 1


def test_pool_at_80_percent_of_usable_slots_is_a_warning(run, sandbox):
    """The measured path: 39 of 47 usable slots in use is past 80 % but short of 95 %.

    38 client backends (this probe included) plus the run's own aias_monitor session; the application's
    oversized pool connects as aias_app and, like the monitor, only gets the 47 non-reserved slots.
    """
    with client_backends(38):
        result = run("database-connection-errors")
    assert result.codes["DB_POOL_SATURATED"] == "WARNING", result.codes
    pool = next(f for f in result.verdict["findings"] if f["code"] == "DB_POOL_SATURATED")
    assert pool["evidence"]["usable"] == 47 and 80 <= pool["evidence"]["usage_pct"] < 95
    assert "aias-api/oversized-pool" in pool["evidence"]["top_applications"]
    assert result.proc.returncode == 1
