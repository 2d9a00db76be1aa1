"""The health-check runbook, run through the real runner against the real sandbox."""

from __future__ import annotations

import json
import re

import psycopg

from ..helpers import runs, sandbox_dsn


def test_healthy_sandbox_is_ok(run):
    result = run("health-check", "--env", "sandbox")
    assert result.proc.returncode == 0, result.proc.stderr
    assert result.codes == {"API_HEALTHY": "OK", "API_LATENCY_OK": "OK"}
    assert result.verdict["status"] == "OK"
    assert result.proc.stdout.startswith("OK:")
    with psycopg.connect(sandbox_dsn()) as conn:
        logged = conn.execute("SELECT count(*) FROM api_requests WHERE path = '/api/healthz' AND status = 200 "
                              "AND ip = '127.0.0.1' AND created_at >= %s",    # the probe's, not the visitors'
                              (result.verdict["provenance"]["started_at"],)).fetchone()[0]
    assert logged >= 20, "the sandbox API logs every request to api_requests"


def test_api_slow_is_latency_critical(run, scenario):
    scenario("api-slow")
    result = run("health-check")
    assert result.codes.get("API_LATENCY_P95_HIGH") == "CRITICAL", result.codes
    assert result.proc.returncode == 2
    latency = next(f for f in result.verdict["findings"] if f["code"] == "API_LATENCY_P95_HIGH")
    assert latency["evidence"]["p95_ms"] > 1000
    assert latency["evidence"]["method"] == "inverted_cdf"


def test_api_down_is_critical_and_still_reported(run, scenario):
    scenario("api-down")
    result = run("health-check", "--incident", "INC-42")
    assert result.proc.returncode == 2, result.proc.stderr
    assert result.codes == {"API_DOWN": "CRITICAL"}
    assert result.folder.name.endswith("_health-check_sandbox_INC-42")
    assert {p.name for p in result.folder.iterdir()} == {"notebook.ipynb", "report.html", "verdict.json"}
    assert "status update" in " ".join(result.verdict["findings"][0]["next_steps"])


def test_a_run_adds_three_files_and_one_catalogue_line(run):
    first = run("health-check", "-p", "samples=10")
    second = run("health-check", "-p", "samples=10")
    assert first.proc.returncode == second.proc.returncode == 0
    folders = second.folders
    assert len(folders) == 2 and folders[0] != folders[1], "a second run must not overwrite the first"
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == {"notebook.ipynb", "report.html", "verdict.json"}
    records = runs(second.output)
    assert len(records) == 2
    assert {r["report_dir"] for r in records} == {f.relative_to(second.output).as_posix() for f in folders}
    index = (second.output / "index.html").read_text()
    assert all(f'href="{r["report_dir"]}/report.html"' in index for r in records)


def test_report_puts_verdict_and_provenance_first(run):
    result = run("health-check", "-p", "samples=10", "--operator", "alice")
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    header = "".join(nb["cells"][0]["source"])
    assert header.startswith("# OK: health-check on sandbox")
    assert "| operator | alice |" in header and result.verdict["run_id"] in header
    html = (result.folder / "report.html").read_text()
    assert html.index("OK: health-check on sandbox") < html.index("Quick Health Check")
    prov = result.verdict["provenance"]
    assert prov["parameters"] == {"environment": "sandbox", "samples": 10, "interval_ms": 100, "timeout_s": 5.0}
    assert prov["operator"] == "alice" and prov["versions"]["papermill"] != "not installed"
    assert "<img" in html, "the latency chart is embedded in the standalone report"
    assert not re.search(r"<(?:script|link|img)[^>]+(?:src|href)=\"https?:", html), "nothing fetched from the network"
    assert '<details class="code"><summary>code</summary>' in html, "the code is there, folded, for who wants it"
