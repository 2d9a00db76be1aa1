"""workflows-not-executing through the runner, against the sandbox's real workflow worker (sandbox/worker.py): its
queue in workflow_executions, its heartbeat, the integrations it calls (sandbox/services.py) and the plan limits."""

from __future__ import annotations

import psycopg

from aias_runbooks.sandbox.emulators.hosted.integrations import INTEGRATION_SLOW_S
from aias_runbooks.sandbox.faults import workflow_faults as workflows

from ..helpers import PROBLEMS, admin_session, audit_records, finding, sandbox_dsn, wait_for

RUNBOOK = "workflows-not-executing"
MAX_ATTEMPTS = 3        # params/thresholds.yaml workflows.retry_max_attempts: the first run and two retries


def retries_of(ids: list[str]) -> dict[str, int]:
    with psycopg.connect(sandbox_dsn()) as conn:
        rows = conn.execute("SELECT retry_of::text, count(*) FROM workflow_executions WHERE retry_of = ANY(%s::uuid[]) "
                            "GROUP BY retry_of", [ids]).fetchall()
    return dict(rows)


def retried_total() -> int:
    with psycopg.connect(sandbox_dsn()) as conn:
        return conn.execute("SELECT count(*) FROM workflow_executions WHERE retry_of IS NOT NULL").fetchone()[0]


def test_healthy_workflows_have_no_problem(run):
    result = run(RUNBOOK)
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values())
    assert {"WORKFLOWS_QUEUE_OK", "WORKER_ALIVE", "WORKFLOW_TIMEOUTS_OK", "EXTERNAL_APIS_OK",
            "PLAN_LIMITS_OK"} <= result.codes.keys()


def test_workers_down_leaves_executions_stuck(run, scenario):
    scenario("workers-down")
    result = run(RUNBOOK)
    assert result.proc.returncode == 2
    stuck = finding(result, "WORKFLOWS_STUCK_PENDING")
    assert stuck["severity"] == "CRITICAL" and stuck["evidence"]["pending"] >= workflows.STUCK   # + visitors' runs
    down = finding(result, "WORKER_DOWN")
    assert down["severity"] == "CRITICAL" and "heartbeat was 20" in down["title"]


def test_external_api_outage_names_the_integration(run, scenario):
    scenario("external-api-outage")
    result = run(RUNBOOK)
    assert result.proc.returncode == 2
    down = finding(result, "EXTERNAL_API_DOWN")
    assert down["severity"] == "CRITICAL" and "hubspot" in down["title"]
    assert set(down["evidence"]["integrations"]) == {workflows.DOWN_INTEGRATION}
    assert "HTTP 503" in down["evidence"]["integrations"]["hubspot"]


def test_a_slow_integration_is_named_slow_not_down(run, scenario):
    """An integration that answers its probe (200), slower than the worker waits: its executions time out. That
    is EXTERNAL_API_SLOW (WARNING) naming it, its timeout share and the probe's latency, not an outage."""
    scenario("external-api-slow")
    result = run(RUNBOOK)
    assert "EXTERNAL_API_DOWN" not in result.codes, "it answers: not down"
    slow = finding(result, "EXTERNAL_API_SLOW")
    assert slow["severity"] == "WARNING" and workflows.SLOW_INTEGRATION in slow["title"]
    said = slow["evidence"]["integrations"][workflows.SLOW_INTEGRATION]
    assert said["probe_status"] == 200 and said["probe_latency_ms"] >= 1000 * INTEGRATION_SLOW_S
    assert said["timeout_share_pct"] >= 50 and f"{said['timeout_share_pct']:.0f}%" in slow["title"]
    timeouts = finding(result, "WORKFLOW_TIMEOUTS")   # CRITICAL past 20 % of the hour: a young sandbox's is sparse
    assert f"{workflows.SLOW_INTEGRATION} carries" in timeouts["title"]
    assert next(iter(timeouts["evidence"]["timed_out_by_integration"])) == workflows.SLOW_INTEGRATION
    assert result.proc.returncode == {"WARNING": 1, "CRITICAL": 2}[timeouts["severity"]], result.verdict["findings"]


def test_plan_limit_names_the_tenant(run, scenario):
    scenario("plan-limit-reached")
    with psycopg.connect(sandbox_dsn()) as conn:
        _, name, slug, limit = conn.execute(workflows.PLAN_TENANT_SQL).fetchone()
    result = run(RUNBOOK)
    assert result.proc.returncode == 1
    reached = finding(result, "PLAN_LIMIT_REACHED")
    assert reached["severity"] == "WARNING" and name in reached["title"] and slug in reached["title"]
    assert reached["evidence"]["tenants"][0].endswith(f"{limit} of {limit}")


def test_retry_dry_run_changes_nothing_apply_requeues_each_listed_execution_once(run):
    window = ("-p", "window_minutes=1440")   # the seed's failures of the last day, however long the session has run
    before = retried_total()
    dry = run(RUNBOOK, *window)
    assert dry.proc.returncode == 0 and not (dry.output / "audit.jsonl").exists(), "a dry run is not audited"
    assert "dry run: would retry" in (dry.folder / "notebook.ipynb").read_text()
    assert retried_total() == before, "a dry run retries nothing"

    applied = run(RUNBOOK, *window, "-p", "apply=true", "--operator", "alice")
    records = audit_records(applied)
    assert [r["phase"] for r in records] == ["started", "finished"] and records[0]["action"] == "retry_executions"
    planned = [t["execution"] for t in records[0]["targets"]]
    assert planned and records[1]["retried"] == len(planned) and records[1]["operator"] == "alice"
    assert retries_of(planned) == {i: 1 for i in planned}, "each listed execution re-queued exactly once"

    again = run(RUNBOOK, *window, "-p", "apply=true", "--operator", "alice")
    replanned = {t["execution"] for r in audit_records(again)[2:] if r["phase"] == "started" for t in r["targets"]}
    assert not replanned & set(planned), "a retried execution is not planned again"
    assert retries_of(planned) == {i: 1 for i in planned}, "nor retried twice"


def retries_waiting() -> int:
    """Retries the worker has not finished yet (pending or running)."""
    with admin_session() as conn:
        return conn.execute("SELECT count(*) FROM workflow_executions WHERE retry_of IS NOT NULL "
                            "AND status IN ('pending', 'running')").fetchone()[0]


def highest_attempt(since) -> int:
    with admin_session() as conn:
        return conn.execute("SELECT coalesce(max(attempt), 1) FROM workflow_executions WHERE created_at >= %s",
                            [since]).fetchone()[0]


def test_retry_stops_at_the_attempt_cap_while_the_cause_persists(run, scenario):
    """HubSpot stays down, so every retry of its executions fails again. Each apply re-queued the previous apply's
    failed retries with no end; now an execution is retried until MAX_ATTEMPTS attempts in all, and the apply
    after that skips it and says why (in the plan and the audit)."""
    scenario("external-api-outage")
    with admin_session() as conn:
        since = conn.execute("SELECT now()").fetchone()[0]
    window = ("-p", "window_minutes=10")
    for _ in range(MAX_ATTEMPTS - 1):          # attempts 2 and 3: each fails again (the cause persists)
        applied = run(RUNBOOK, *window, "-p", "apply=true", "--operator", "alice")
        assert "RUNBOOK_ERROR" not in applied.codes, applied.verdict["findings"]
        wait_for(lambda: retries_waiting() == 0, 90, "the worker to run the retries")
    assert highest_attempt(since) == MAX_ATTEMPTS, "the premise: executions at the cap, failed again"
    with admin_session() as conn:
        capped = {i for (i,) in conn.execute(
            "SELECT e.id::text FROM workflow_executions e WHERE e.attempt >= %s AND e.created_at >= %s "
            "AND e.status IN ('failed', 'timed_out') "
            "AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.retry_of = e.id)",
            [MAX_ATTEMPTS, since]).fetchall()}
    assert capped

    last = run(RUNBOOK, *window, "-p", "apply=true", "--operator", "alice")
    wait_for(lambda: retries_waiting() == 0, 90, "the worker to run the retries")
    assert highest_attempt(since) == MAX_ATTEMPTS, "no execution is tried a fourth time"
    assert not retries_of(sorted(capped)), "the capped executions were not re-queued"
    text = (last.folder / "notebook.ipynb").read_text()
    assert f"skipped: attempt {MAX_ATTEMPTS} of at most {MAX_ATTEMPTS} failed" in text
    record = audit_records(last)[-1]       # the last apply's outcome: finished, or a no-op if it had only capped ones
    assert record["phase"] in {"finished", "no-op"}
    assert capped <= {t["execution"] for t in record["capped"]}
    assert all(f"attempt {MAX_ATTEMPTS} of at most {MAX_ATTEMPTS}" in t["reason"] for t in record["capped"])
