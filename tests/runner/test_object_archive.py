"""Real runs filed into object storage (moto's S3 server through s3fs): the report is uploaded whole and listed
only once its record is written; a run killed during the upload is never listed and the next run finishes it; a
bucket failing mid-upload leaves the complete report local, says where, and the next run uploads it."""

from __future__ import annotations

import json
import re
import signal
import subprocess

from aias_runbooks.runner import catalog
from aias_runbooks.runner.store import open_archive

from ..helpers import CLI, cli, runs, wait_for
from ..s3 import gate

REPORT_FILES = {"notebook.ipynb", "report.html", "verdict.json"}


def _report_put(method: str, path: str) -> bool:
    """A PUT of a report folder's file (not a record, an index or the archive check's probe)."""
    return method == "PUT" and bool(re.search(r"/reports/\d{4}-\d{2}-\d{2}/\d{6}_[^/]+/[^/]+$", path))


def _files(url: str, rel: str) -> set[str]:
    archive = open_archive(url)
    return {p.rsplit("/", 1)[-1] for p in archive.fs.find(archive.path(rel))}


def test_a_run_into_a_bucket_is_uploaded_whole_then_listed(sandbox, s3_archive, tmp_path):
    output = tmp_path / "output"
    result = cli("run", "health-check", "-p", "samples=10", "--output", str(output), "--archive", s3_archive,
                 "--entry", "health-5min")
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = runs(s3_archive)
    assert record["status"] == "OK" and record["entry"] == "health-5min" and record["host"]
    assert f"report: {s3_archive}/{record['report_dir']}/report.html" in result.stdout
    assert _files(s3_archive, record["report_dir"]) == REPORT_FILES
    assert json.loads(open_archive(s3_archive).read(f"{record['report_dir']}/verdict.json"))["status"] == "OK"
    assert not list(output.glob("*/*/report.html")) and not list(output.glob(".work/*")), "nothing left locally"
    listed = cli("reports", "--archive", s3_archive)
    assert record["run_id"] in listed.stdout and f"reports under {s3_archive}" in listed.stdout


def test_a_run_killed_during_its_upload_is_never_listed_and_the_next_run_files_it(sandbox, s3_archive, tmp_path):
    output = tmp_path / "output"
    command = [*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output), "--archive", s3_archive]
    with gate(_report_put) as (seen, _):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(seen.is_set, 240, "the run's upload to start")
        proc.send_signal(signal.SIGKILL)   # the runner dies while its report is on its way
        proc.communicate(timeout=60)
    assert runs(s3_archive) == [], "a report not wholly uploaded is never listed"
    listed = cli("reports", "--archive", s3_archive)
    assert listed.returncode == 0 and "no archived run matches" in listed.stdout
    (stranded,) = output.glob(".work/*")

    after = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert (after.returncode, after.stderr) == (0, ""), after.stdout + after.stderr
    filed = runs(s3_archive)
    assert [r["run_id"] for r in filed][0] == stranded.name and len(filed) == 2, "the killed run, then the new one"
    assert all(_files(s3_archive, r["report_dir"]) == REPORT_FILES for r in filed), "both reports whole"
    assert not list(output.glob(".work/*"))


def test_a_bucket_failing_mid_upload_keeps_the_complete_report_local_and_says_where(sandbox, s3_archive, tmp_path):
    output = tmp_path / "output"
    command = [*CLI, "run", "health-check", "-p", "samples=10", "--output", str(output), "--archive", s3_archive]
    with gate(_report_put, fail=True):
        failed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 3 and not failed.stdout, failed.stdout + failed.stderr
    (line,) = failed.stderr.splitlines()
    kept = re.search(r"the complete report is kept in (\S+?), and the next run", line)
    assert kept and "could not upload the report to s3://" in line, line
    folder = output / kept.group(1).split(str(output) + "/", 1)[-1]
    assert {p.name for p in folder.iterdir()} == REPORT_FILES, "complete, scanned, on this host"
    assert runs(s3_archive) == []

    after = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert (after.returncode, after.stderr) == (0, ""), after.stdout + after.stderr
    filed = runs(s3_archive)
    assert len(filed) == 2 and all(_files(s3_archive, r["report_dir"]) == REPORT_FILES for r in filed)
    index = open_archive(s3_archive).read("index.html").decode()
    assert all(f"{r['report_dir']}/report.html" in index for r in filed)
    assert catalog.count(s3_archive) == 2
