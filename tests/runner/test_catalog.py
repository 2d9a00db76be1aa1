"""The archive's catalogue: one record per run, the newest runs on index.html, every run of a closed day on that
day's page, an archive from before records imported once; in a local folder and in a real S3 API (moto's server
through s3fs), where two hosts file at once and filing costs a bounded number of object writes."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from aias_runbooks.runner import catalog
from aias_runbooks.runner.store import open_archive

from ..helpers import cli
from ..s3 import make_bucket

INDEX = 20   # an index of 20 runs: the same code paths as 500, in a second
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def small_index(monkeypatch):
    monkeypatch.setattr(catalog, "INDEX_RUNS", INDEX)


def _run(i: int, summary: str = "OK: 2 check(s) passed", hours: float = 5) -> dict:
    started = START + timedelta(hours=hours * i)
    return {"run_id": f"{started:%Y%m%d-%H%M%S}-{i:04x}", "runbook": "health-check" if i % 2 else "database-health",
            "env": "sandbox", "incident": None, "status": "WARNING" if i % 7 == 0 else "OK", "summary": summary,
            "started_at": started.isoformat(), "report_dir": f"{started:%Y-%m-%d}/{started:%H%M%S}_run-{i:04d}",
            "redactions": 0}


def _file(root, runs: list[dict]) -> None:
    """File runs in the order they started, each at the time it ended (its start plus a minute)."""
    for run in runs:
        catalog.file_run(root, run, now=datetime.fromisoformat(run["started_at"]) + timedelta(minutes=1))


def _dirs(html: str, base: str = "") -> list[str]:
    return re.findall(rf'href="{re.escape(base)}(\d{{4}}-\d{{2}}-\d{{2}}/[^"/]+)/report.html"', html)


def test_index_shows_the_newest_runs_and_every_closed_day_is_paged(tmp_path):
    root = tmp_path / "output"
    runs = [_run(i) for i in range(60)]          # 60 runs over 12.5 days
    _file(root, runs)
    index = (root / "index.html").read_text()
    assert _dirs(index) == [r["report_dir"] for r in reversed(runs)][:INDEX], "the newest runs, newest first"
    assert "of 60 run(s)" in index
    last = datetime.fromisoformat(runs[-1]["started_at"])
    closed = f"{last - timedelta(days=catalog.CLOSED_AFTER_DAYS):%Y-%m-%d}"
    pages = sorted((root / "archive").glob("*.html"))
    assert [p.stem for p in pages] == sorted({r["started_at"][:10] for r in runs if r["started_at"][:10] <= closed})
    paged = [d for page in pages for d in _dirs(page.read_text(), "../")]
    assert sorted(paged) == sorted(r["report_dir"] for r in runs if r["started_at"][:10] <= closed), \
        "every run of a closed day on exactly one page"
    assert all(f'href="archive/{p.name}"' in index for p in pages), "the index links every day's page"
    assert [r["run_id"] for r in catalog.read_runs(root)] == [r["run_id"] for r in runs]


def test_a_record_is_never_rewritten_and_a_second_filing_is_one_run(tmp_path):
    root = tmp_path / "output"
    run = _run(1)
    _file(root, [run, run])   # a filing resumed after it was cut short files the same run again
    (record,) = (root / catalog.RUNS).glob("*/*.json")
    assert json.loads(record.read_text()) == run and len(catalog.read_runs(root)) == 1
    assert "of 1 run(s)" in (root / "index.html").read_text()


def test_hostile_summaries_are_text_on_every_page(tmp_path):
    root = tmp_path / "output"
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    _file(root, [_run(i, hostile) for i in range(15)])
    pages = [root / "index.html", *sorted((root / "archive").glob("*.html"))]
    assert len(pages) >= 2
    for page in pages:
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html and "&lt;script&gt;alert(1)" in html


def test_an_archive_from_before_records_is_imported_once(tmp_path):
    root = tmp_path / "output"
    root.mkdir()
    runs = [_run(i) for i in range(30)]
    (root / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs) + '{"run_id": "torn", "runb')
    (root / "archive").mkdir()
    (root / "archive" / "runs-000001.html").write_text("an old page")
    listed = cli("reports", "--output", str(root), "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    assert re.findall(r"\b\d{8}-\d{6}-[0-9a-f]{4}\b", listed.stdout) == [r["run_id"] for r in reversed(runs)]
    assert not (root / "runs.jsonl").exists() and (root / "runs.jsonl.imported").is_file()
    assert not (root / "archive" / "runs-000001.html").exists(), "the old pages go with the old catalogue"
    assert catalog.upgrade(root) == 0 and len(catalog.read_runs(root)) == 30


# --- object storage --------------------------------------------------------------------------------------------

class Requests(logging.Handler):
    """The requests moto's server answers (its werkzeug access log): what the archive cost, counted server-side."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def writes(self) -> list[str]:
        return [line for line in self.lines if re.search(r'"(PUT|POST|DELETE) ', line)]


@pytest.fixture
def requests_seen():
    log = logging.getLogger("werkzeug")
    handler, level = Requests(), log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def _seed(url: str, days: int, per_day: int) -> list[dict]:
    """An archive of days x per_day runs, as filing them would leave it (records, closed days, index)."""
    archive = open_archive(url)
    runs = [_run(i, hours=24 / per_day) for i in range(days * per_day)]
    for run in runs:
        archive.write(catalog.record_path(run), json.dumps(run).encode())
    catalog.rebuild(archive, now=datetime.fromisoformat(runs[-1]["started_at"]))
    return runs


def test_filing_into_a_bucket_costs_at_most_five_writes_however_large(s3_archive, requests_seen):
    runs = _seed(s3_archive, days=30, per_day=40)     # 1,200 runs, 28 closed days
    last = datetime.fromisoformat(runs[-1]["started_at"])
    costs = []
    for n in range(1, 4):
        requests_seen.lines.clear()
        catalog.file_run(s3_archive, _run(len(runs) + n, hours=24 / 40), now=last + timedelta(hours=n))
        costs.append(len(requests_seen.writes()))
    assert max(costs) <= 5, requests_seen.lines
    requests_seen.lines.clear()   # the first filing on a new day closes the day that just closed: 5 writes
    catalog.file_run(s3_archive, _run(len(runs) + 10, hours=24 / 40), now=last + timedelta(days=1, hours=1))
    assert len(requests_seen.writes()) <= 5, requests_seen.writes()
    assert catalog.count(s3_archive) == len(runs) + 4


FILER = """
import json, sys
from pathlib import Path
from aias_runbooks.runner import catalog
from aias_runbooks.runner.store import open_archive
archive, host, folder = open_archive(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
for n in range(50):
    run_id = f"20261207-{n // 60:02d}{n % 60:02d}00-{host}{n:02x}"
    started = f"2026-12-07T{n // 60:02d}:{n % 60:02d}:00+00:00"
    rel = f"2026-12-07/{n // 60:02d}{n % 60:02d}00_health-check_sandbox-{host}{n:02x}"
    archive.put_folder(folder, rel)
    catalog.file_run(archive, {"run_id": run_id, "runbook": "health-check", "env": "sandbox", "incident": None,
                               "status": "OK", "summary": f"OK: from host {host}", "started_at": started,
                               "report_dir": rel, "host": host})
"""


def test_two_hosts_file_50_runs_each_into_one_bucket_at_once_and_none_is_lost(s3_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "INDEX_RUNS", 500)   # the real index: all 100 on it
    folder = tmp_path / "report"
    folder.mkdir()
    for name in ("report.html", "verdict.json", "notebook.ipynb"):
        (folder / name).write_text("{}")
    hosts = [subprocess.Popen([sys.executable, "-c", FILER, s3_archive, host, str(folder)]) for host in ("a0", "b1")]
    assert [h.wait(timeout=300) for h in hosts] == [0, 0]
    filed = [r["run_id"] for r in catalog.read_runs(s3_archive)]
    assert len(filed) == len(set(filed)) == 100, "every run once"
    listed = cli("reports", "--archive", s3_archive, "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    assert sorted(re.findall(r"\b20261207-\d{6}-[ab][01][0-9a-f]{2}\b", listed.stdout)) == sorted(filed)
    assert "100 run(s), newest first" in listed.stdout
    index = open_archive(s3_archive).read("index.html").decode()
    assert sorted(_dirs(index)) == sorted(r["report_dir"] for r in catalog.read_runs(s3_archive))
    assert "of 100 run(s)" in index
    assert catalog.index_state(s3_archive)["total"] == 100, "the count every filing keeps: no run counted twice"


def test_an_unreachable_unauthorised_or_missing_bucket_is_one_line_exit_3_before_any_kernel(s3_server, tmp_path):
    output = tmp_path / "output"
    missing = cli("run", "health-check", "--output", str(output), "--archive", "s3://no-such-bucket/reports")
    closed = cli("run", "health-check", "--output", str(output), "--archive", "s3://any-bucket/reports",
                 env=os.environ | {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"})
    bad = cli("run", "health-check", "--output", str(output), "--archive", "s3://Bad_Bucket")
    bucket = make_bucket()
    httpx.post(f"{s3_server}/moto-api/reset-auth", content=b"0").raise_for_status()   # IAM checked from now on
    try:
        denied = cli("run", "health-check", "--output", str(output), "--archive", f"s3://{bucket}/reports")
    finally:
        httpx.post(f"{s3_server}/moto-api/reset-auth", content=b"inf").raise_for_status()
    for result, says in ((missing, "no such bucket"), (closed, "Could not connect"), (bad, "s3://BUCKET/PREFIX"),
                         (denied, "access denied")):
        assert result.returncode == 3 and not result.stdout, result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert says in line, line
    assert not list(output.glob(".work/*")) and not list(output.glob("*/*/report.html")), "nothing ran"
