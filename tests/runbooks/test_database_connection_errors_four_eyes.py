"""Four-eyes approvals and blast-radius limits of a guarded action (issue 23, part 3), through the real CLI against
the sandbox's leaked sessions (scenario db-connection-leak): database-connection-errors' terminate.

The committed profile sandbox-four-eyes (extends sandbox, approvals: required) carries the main flow. The limits
and a short expiry come from profiles the way a user writes them, `extends:` plus a `thresholds:` override, in a
copy of params/ that AIAS_HOME points the CLI at (the checkout's params/ stays as committed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from aias_runbooks.actions import approvals

from ..helpers import ROOT, Run, app_dsn, cli, code_cells, leaked_longer_than, sandbox_dsn, vercel, wait_for

WORKER = "aias-api/export-worker"
FOUR_EYES = "sandbox-four-eyes"
TERMINATE_CELL = "dc-21"
# Profiles a user could write: each extends a committed one and overrides params/thresholds.yaml's guarded_actions.
PROFILES = {
    "four-eyes-short-ttl": "extends: sandbox-four-eyes\nthresholds:\n  guarded_actions: {approval_ttl_minutes: 0.5}\n",
    "five-targets": "extends: sandbox\nthresholds:\n  guarded_actions:\n"
                    "    terminate_leaked_sessions: {max_targets: 5}\n",
    "one-apply-an-hour": "extends: sandbox\nthresholds:\n  guarded_actions:\n"
                         "    terminate_leaked_sessions: {max_applies_per_hour: 1}\n",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """The CLI's environment with AIAS_HOME at a checkout whose params/ also holds PROFILES."""
    root = tmp_path_factory.mktemp("four-eyes-home")
    shutil.copytree(ROOT / "params", root / "params")
    (root / "notebooks").symlink_to(ROOT / "notebooks")
    for name, text in PROFILES.items():
        (root / "params" / "environments" / f"{name}.yaml").write_text(f"description: test profile {name}\n{text}")
    return {**os.environ, "AIAS_HOME": str(root)}


@pytest.fixture
def leak(scenario) -> None:
    """The sandbox with 8 sessions of the export worker idle in transaction past the runs' 2 s criterion."""
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")


def terminate(run, env_name: str = FOUR_EYES, operator: str = "alice", *params: str,
              env: dict | None = None) -> Run:
    """database-connection-errors against env_name: a dry run, or with params `-p apply=true` ... an apply."""
    return run("database-connection-errors", "--env", env_name, "-p", "leak_min_idle_s=2",
               "-p", f"only_application={WORKER}", "--operator", operator, *params, env=env)


def apply(run, approval: str | None, env_name: str = FOUR_EYES, env: dict | None = None) -> Run:
    extra = ["-p", f"approval={approval}"] if approval else []
    return terminate(run, env_name, "carol", "-p", "apply=true", *extra, env=env)


def said(result: Run) -> str:
    """What the guarded action's cell printed (its stream output)."""
    cell = code_cells(result)[TERMINATE_CELL]
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def audit(output: Path) -> list[dict]:
    path = output / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def sessions(app: str = WORKER) -> int:
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0]


def approve(output: Path, request_id: str, approver: str, env: dict | None = None):
    return cli("approve", request_id, "--as", approver, "--output", str(output), env=env)


def filed(result: Run) -> approvals.Request:
    """The one request the dry run filed, as the id it printed names it."""
    ids = re.findall(r"approval request (apr-[0-9a-f]{12}) filed", said(result))
    assert len(ids) == 1, said(result)
    return approvals.load(ids[0], result.output)


def one_line_error(proc) -> str:
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, (proc.returncode, proc.stderr)
    return proc.stderr


def test_a_dry_run_files_a_request_another_person_approves_and_one_apply_uses(run, leak):
    dry = terminate(run)
    assert dry.proc.returncode == 2, dry.proc.stderr
    request = filed(dry)
    assert (request.status, request.requested_by, request.env, request.run_id) == (
        "pending", "alice", FOUR_EYES, dry.verdict["run_id"])
    assert len(request.plan) == 8 and {t["application"] for t in request.plan} == {WORKER}
    assert list(request.plan[0])[:4] == ["pid", "backend_start", "xact_start", "target"], "identity first"
    assert request.reason.startswith("DB_CONNECTION_LEAK: ") and re.fullmatch(r"[0-9a-f]{64}", request.plan_hash)
    assert f"aias-runbooks approve {request.id}" in said(dry) and f"-p approval={request.id}" in said(dry)
    assert [(r["phase"], r["request"]) for r in audit(dry.output)] == [("requested", request.id)]
    assert sessions() == 8, "a dry run terminates nothing"

    again = terminate(run)       # the same plan, still pending: the same request, not a second one
    assert f"approval request {request.id} pending" in said(again)
    assert len(approvals.requests(dry.output)) == 1 and len(audit(dry.output)) == 1

    assert "cannot approve their own request" in one_line_error(approve(dry.output, request.id, " Alice "))
    with ThreadPoolExecutor(2) as pool:           # two approvers at once: the compare-and-swap lets one win
        answers = dict(zip(("bob", "dave"), pool.map(lambda who: approve(dry.output, request.id, who), ("bob", "dave")),
                           strict=True))
    winner = approvals.load(request.id, dry.output).approved_by
    loser = "dave" if winner == "bob" else "bob"
    assert answers[winner].returncode == 0 and f"approved {request.id}" in answers[winner].stdout
    assert f"already approved by {winner}" in one_line_error(answers[loser])

    applied = apply(run, request.id)
    assert sessions() == 0
    records = audit(dry.output)
    assert [r["phase"] for r in records] == ["requested", "approved", "started", "finished"]
    assert {r["request"] for r in records} == {request.id}
    assert records[1]["operator"] == winner and records[1]["via"] == "cli"
    finished = records[3]
    assert finished["operator"] == "carol" and finished["terminated"] == 8
    assert sorted(t["pid"] for t in finished["targets"]) == sorted(t["pid"] for t in request.plan)
    done = approvals.load(request.id, dry.output)
    assert (done.status, done.applied_by, done.apply_run_id) == ("applied", "carol", applied.verdict["run_id"])

    twice = apply(run, request.id)
    refused = audit(dry.output)[-1]
    assert (refused["phase"], refused["request"]) == ("refused", request.id) and "already applied" in refused["reason"]
    assert f"terminate_leaked_sessions refused, nothing changed: {request.id} was already applied" in said(twice)
    listed = cli("approvals", "--status", "applied", "--output", str(dry.output))
    assert listed.returncode == 0 and request.id in listed.stdout


def test_an_apply_without_approval_is_refused_under_four_eyes(run, leak):
    result = apply(run, None)
    assert sessions() == 8
    [record] = audit(result.output)
    assert record["phase"] == "refused" and "needs an approved request" in record["reason"]
    assert "refused, nothing changed" in said(result) and "-p approval=ID -p apply=true" in said(result)


def test_a_plan_that_changed_since_the_approval_is_refused(run, leak):
    dry = terminate(run)
    request = filed(dry)
    assert approve(dry.output, request.id, "bob").returncode == 0
    with psycopg.connect(app_dsn(), application_name=WORKER) as late:   # one more leak after the approval
        late.execute("SELECT 1")
        wait_for(lambda: leaked_longer_than(2.5, sessions=9), 60, "the ninth leak to pass the 2 s criterion")
        result = apply(run, request.id)
        assert sessions() == 9
    record = audit(result.output)[-1]
    assert record["phase"] == "refused" and record["request"] == request.id
    assert "the plan changed since it was approved: 8 targets then, 9 now; file a new request" in record["reason"]
    assert approvals.load(request.id, result.output).status == "approved", "a refused apply uses no approval"


def test_an_expired_request_is_refused(run, leak, home):
    dry = terminate(run, "four-eyes-short-ttl", env=home)
    request = filed(dry)
    assert approve(dry.output, request.id, "bob", env=home).returncode == 0
    wait_for(lambda: approvals.load(request.id, dry.output).status == "expired", 90, "the request's 30 s to pass")
    result = apply(run, request.id, "four-eyes-short-ttl", env=home)
    assert sessions() == 8
    record = audit(result.output)[-1]
    assert record["phase"] == "refused" and f"{request.id} expired at" in record["reason"]
    assert "expired" in one_line_error(approve(dry.output, request.id, "dave", env=home))


def test_over_max_targets_is_refused_in_one_line(run, leak, home):
    result = apply(run, None, "five-targets", env=home)
    assert sessions() == 8
    [record] = audit(result.output)
    assert record["phase"] == "refused" and "max_targets=5" in record["reason"]
    lines = [line for line in said(result).splitlines() if "refused" in line]
    assert len(lines) == 1 and "8 targets is over the blast-radius limit max_targets=5" in lines[0]
    assert "params/thresholds.yaml guarded_actions.terminate_leaked_sessions.max_targets" in lines[0]


def test_over_max_applies_per_hour_is_refused(run, scenario, leak, home):
    first = apply(run, None, "one-apply-an-hour", env=home)
    assert sessions() == 0 and [r["phase"] for r in audit(first.output)] == ["started", "finished"]
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the new leaked sessions to pass the 2 s criterion")
    second = apply(run, None, "one-apply-an-hour", env=home)
    assert sessions() == 8
    record = audit(second.output)[-1]
    assert record["phase"] == "refused" and "max_applies_per_hour=1" in record["reason"]
    assert "guarded_actions.terminate_leaked_sessions.max_applies_per_hour" in said(second)


def test_approve_names_a_bad_or_unknown_id_in_one_line(tmp_path):
    assert "is not valid; valid: apr- and 12 hex digits" in one_line_error(approve(tmp_path, "../etc/passwd", "bob"))
    assert "no approval request apr-0123456789ab" in one_line_error(approve(tmp_path, "apr-0123456789ab", "bob"))
    assert "invalid choice" in one_line_error(cli("approvals", "--status", "done", "--output", str(tmp_path)))


def test_a_rollback_under_four_eyes_runs_only_on_an_approved_request(run, scenario):
    """The gate is the same for every wired action: high-error-rate's rollback of the blamed deployment."""
    scenario("error-spike-after-deploy")
    before = vercel().deployments()
    bad, previous = before.iloc[0]["id"], before.iloc[1]["id"]
    dry = run("high-error-rate", "--env", FOUR_EYES, "--operator", "alice")
    [request] = approvals.requests(dry.output)
    assert request.action == "rollback_deployment" and request.plan[0]["rollback_to"] == previous
    assert request.plan[0]["live"] == bad and request.reason.startswith("ERROR_SPIKE_AFTER_DEPLOY: ")

    refused = run("high-error-rate", "--env", FOUR_EYES, "--operator", "carol", "-p", "apply=true")
    assert vercel().deployments().iloc[0]["live"], "no approval, no rollback"
    assert approve(dry.output, request.id, "bob").returncode == 0
    applied = run("high-error-rate", "--env", FOUR_EYES, "--operator", "carol", "-p", "apply=true",
                  "-p", f"approval={request.id}")
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == [previous]
    records = audit(applied.output)
    assert [r["phase"] for r in records] == ["requested", "refused", "approved", "started", "finished"]
    assert "needs an approved request" in records[1]["reason"] and refused.output == applied.output
    assert [r.get("request") for r in records] == [request.id, None, request.id, request.id, request.id]
    assert records[-1]["outcome"] == "rolled back"


BAD_PROFILES = {
    "bad-approvals": ("extends: sandbox\napprovals: sometimes\n",
                      "environment 'bad-approvals': approvals 'sometimes' is not valid; valid: required, off, or a "
                      "list of guarded actions (terminate_leaked_sessions, "),
    "bad-base": ("extends: staging\n", "environment 'bad-base': extends 'staging' is not a profile; valid: "),
    "loop-a": ("extends: loop-b\n", "environment 'loop-a': extends loop-a -> loop-b -> loop-a is a cycle"),
    "loop-b": ("extends: loop-a\n", None),
}


@pytest.mark.parametrize("name", [n for n, (_, message) in BAD_PROFILES.items() if message])
def test_a_bad_approvals_or_extends_setting_is_one_line_before_anything_runs(tmp_path, name):
    root = tmp_path / "home"
    shutil.copytree(ROOT / "params", root / "params")
    (root / "notebooks").symlink_to(ROOT / "notebooks")
    for profile, (text, _) in BAD_PROFILES.items():
        (root / "params" / "environments" / f"{profile}.yaml").write_text(text)
    proc = cli("run", "health-check", "--env", name, "--output", str(tmp_path / "out"),
               env={**os.environ, "AIAS_HOME": str(root)})
    assert BAD_PROFILES[name][1] in one_line_error(proc) and not (tmp_path / "out").exists()
