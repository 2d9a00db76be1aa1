"""trends through the runner, against the session's sandbox: an archive with no run to chart is TRENDS_NO_DATA; a
real health-check filed into the same archive is the point it then charts. Informational either way: exit 0, a
report with its chart. (How points are read from made-up archives: tests/runner/test_archive.py.)"""

from __future__ import annotations

from ..helpers import code_cells, finding

SLUG = "trends"


def test_an_empty_archive_has_no_data_and_a_real_run_filed_there_is_charted(quiet, run):
    empty = run(SLUG)
    assert empty.proc.returncode == 0, empty.proc.stdout + empty.proc.stderr
    assert empty.codes == {"TRENDS_NO_DATA": "OK"}, empty.verdict["findings"]

    health = run("health-check", "-p", "samples=10", "-p", "interval_ms=0")
    assert health.proc.returncode == 0, health.verdict["findings"]
    [latency] = [f for f in health.verdict["findings"] if f["code"].startswith("API_LATENCY_")]

    charted = run(SLUG)
    assert charted.proc.returncode == 0, charted.proc.stdout + charted.proc.stderr
    trend = finding(charted, "TRENDS_OK")
    assert trend["severity"] == "OK" and trend["title"].startswith("1 archived run(s) charted over 30 day(s)")
    p95 = trend["evidence"]["API health P95 (ms)"]
    assert p95["runs"] == 1 and p95["latest"] == latency["evidence"]["p95_ms"], trend["evidence"]
    assert {"notebook.ipynb", "report.html", "verdict.json"} <= {p.name for p in charted.folder.iterdir()}
    assert any("image/png" in o.get("data", {}) for c in code_cells(charted).values() for o in c["outputs"]), \
        "the chart of how the metrics moved"
