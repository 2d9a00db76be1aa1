"""high-error-rate through the runner: the sustained 5-minute rule, the dominant pattern, and the deployment the
errors started with, against a real faulty deployment in the Vercel emulator; the guarded rollback."""

from __future__ import annotations

import json

import httpx
from dotenv import dotenv_values

from aias_runbooks import paths, runbook
from aias_runbooks.actions import rollback
from aias_runbooks.sandbox.faults import bad_release as releases
from aias_runbooks.sources import deploys

from ..helpers import PROBLEMS, audit_records, finding, table_text, vercel


def workflows_answers(n: int = 9) -> list[int]:
    api = dotenv_values(paths.sandbox_dir() / "sandbox.env")["AIAS_SANDBOX_API_URL"]
    return [httpx.get(f"{api}/api/workflows", timeout=5).status_code for _ in range(n)]


def test_healthy_platform_has_no_error_problem(quiet, run):
    result = run("high-error-rate")
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values())
    assert {"ERROR_RATE_OK", "NO_DEPLOY_SPIKE", "EXTERNAL_STATUS_OK"} <= result.codes.keys()


def test_spike_after_deploy_names_the_deployment_and_rollback_fixes_it(run, scenario):
    scenario("error-spike-after-deploy")
    before = vercel().deployments()
    bad, previous = before.iloc[0]["id"], before.iloc[1]["id"]
    assert before.iloc[0]["live"] and 500 in workflows_answers(), "the live release really fails"

    result = run("high-error-rate")
    assert result.proc.returncode == 2
    assert result.verdict["summary"].startswith("CRITICAL: ERROR_SPIKE_AFTER_DEPLOY"), "the cause leads the verdict"
    spike = finding(result, "ERROR_SPIKE_AFTER_DEPLOY")
    assert spike["evidence"]["deployment"] == bad and spike["evidence"]["still_live"] is True
    assert result.codes["ERROR_RATE_HIGH"] == "CRITICAL"
    assert "consecutive minutes" in finding(result, "ERROR_RATE_HIGH")["title"]
    pattern = finding(result, "ERROR_PATTERN_DOMINANT")
    assert pattern["evidence"]["route"] == "/api/workflows" and "reading 'tier'" in pattern["title"]
    assert f"Unhandled exception: {releases.BUG}" in table_text(result), "the patterns table shows messages whole"
    assert vercel().deployments().iloc[0]["live"] and not (result.output / "audit.jsonl").exists(), \
        "a dry run changes nothing"

    applied = run("high-error-rate", "-p", "apply=true", "--operator", "alice", "--incident", "INC-9")
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == [previous]
    records = [json.loads(line) for line in (applied.output / "audit.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["started", "finished"]
    assert records[0]["criteria"]["from"] == bad and records[0]["criteria"]["to"] == previous
    assert records[1]["outcome"] == "rolled back" and records[1]["incident"] == "INC-9"
    assert set(workflows_answers()) == {200}, "the previous release serves /api/workflows without errors"

    for _ in range(2):                  # the operator applies again: production must not walk further back
        again = run("high-error-rate", "-p", "apply=true", "--operator", "alice", "--incident", "INC-9")
        assert (f"rollback_deployment no-op, nothing changed: production serves {previous}, created before the "
                f"blamed {bad}: rolled back already") in (again.folder / "notebook.ipynb").read_text()
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == [previous], "one rollback, then nothing"
    records = audit_records(applied)
    assert [r["phase"] for r in records] == ["started", "finished", "no-op", "no-op"]
    assert [r["outcome"] for r in records[1:]] == ["rolled back", "no-op", "no-op"]
    assert all("rolled back already" in r["reason"] for r in records[2:])
    assert {r["criteria"]["blamed"] for r in records} == {bad}


def test_spike_under_a_newer_deployment_rolls_back_past_the_blamed_one(run, scenario):
    """The bug came with an older deployment that a newer one (built on it) now serves on top of: the rollback goes
    to the deployment before the blamed one, not to the one before the live one (the buggy one)."""
    scenario("error-spike-under-newer-deploy")
    before = vercel().deployments()
    newer, bad, sound = before.iloc[0]["id"], before.iloc[1]["id"], before.iloc[2]["id"]
    assert before.iloc[0]["live"] and 500 in workflows_answers(), "the newer release carries the bug"

    result = run("high-error-rate")
    spike = finding(result, "ERROR_SPIKE_AFTER_DEPLOY")
    assert spike["evidence"]["deployment"] == bad and spike["evidence"]["still_live"] is False

    applied = run("high-error-rate", "-p", "apply=true", "--operator", "alice")
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == [sound]
    assert f"would point production at {sound}" in (result.folder / "notebook.ipynb").read_text(), "the dry run"
    started, finished = audit_records(applied)
    assert started["criteria"] | {"project": None} == {"from": newer, "blamed": bad, "to": sound, "project": None}
    assert finished["outcome"] == "rolled back"
    assert set(workflows_answers()) == {200}, "the deployment before the bug serves /api/workflows without errors"


def test_an_apply_with_no_deployment_blamed_is_refused_and_audited(quiet, run):
    live = vercel().deployments().query("live")["id"].tolist()
    result = run("high-error-rate", "-p", "apply=true", "--operator", "alice")
    assert result.proc.returncode == 0 and "NO_DEPLOY_SPIKE" in result.codes
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == live, "nothing blamed: production stays where it is"
    (record,) = audit_records(result)
    assert (record["action"], record["phase"], record["outcome"]) == ("rollback_deployment", "refused", "refused")
    assert "no deployment is blamed" in record["reason"] and record["operator"] == "alice"


def test_the_live_deployment_changing_after_the_plan_refuses_the_apply_and_is_audited(scenario, tmp_path,
                                                                                      monkeypatch):
    """Between the plan and the apply someone else rolled production back: the apply re-reads the live deployment
    just before the call and refuses, instead of rolling back from a deployment that is no longer live."""
    scenario("error-spike-after-deploy")
    monkeypatch.setenv("AIAS_OUTPUT_DIR", str(tmp_path / "output"))
    for var in ("AIAS_RUN_ID", "AIAS_INCIDENT"):
        monkeypatch.delenv(var, raising=False)
    rb = runbook.start("high-error-rate", "sandbox")
    deployments, problem = deploys.read(rb.env)
    assert deployments is not None, problem
    bad, previous = deployments.iloc[0]["id"], deployments.iloc[1]["id"]
    planned = rollback.plan(deployments, bad)
    assert planned.iloc[0]["rollback_to"] == previous

    vercel().rollback(previous, "a colleague rolled back from the Vercel dashboard")
    result = rollback.run(rb, planned, apply=True, operator="alice")

    action = result.iloc[0]["action"]
    assert action.startswith(f"refused: production changed since the plan: {bad} was live, now {previous} is"), action
    after = vercel().deployments()
    assert after.loc[after["live"], "id"].tolist() == [previous], "not moved again"
    (record,) = [json.loads(line) for line in (tmp_path / "output" / "audit.jsonl").read_text().splitlines()]
    assert (record["phase"], record["outcome"], record["operator"]) == ("refused", "refused", "alice")
    assert record["reason"].startswith("production changed since the plan")
    assert record["criteria"] | {"project": None} == {"from": bad, "blamed": bad, "to": previous, "project": None}
