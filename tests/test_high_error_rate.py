"""high-error-rate through the runner: the sustained 5-minute rule, the dominant pattern, and the deployment the
errors started with, against a real faulty deployment in the Vercel emulator; the guarded rollback."""

from __future__ import annotations

import json

import httpx
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.settings import load_environment
from aias_runbooks.sources.deploys import Vercel

from .conftest import finding

PROBLEMS = {"WARNING", "CRITICAL"}


def vercel() -> Vercel:
    profile = load_environment("sandbox")
    return Vercel(profile.secret("vercel_token").reveal(), profile.urls["vercel_api"], profile.vercel_project)


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
