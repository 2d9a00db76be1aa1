"""Real runs filed into object storage (moto's S3 server through s3fs): the report is uploaded whole and listed
only once its record is written; a run killed during the upload is never listed and the next run finishes it; a
bucket failing mid-upload leaves the complete report local, says where, and the next run uploads it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import zipfile
from datetime import datetime, timedelta, timezone

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


def _made_up(url: str, n: int, days_ago: float, incident: str | None, tmp_path) -> dict:
    """A run's report folder put in the bucket and its record filed, as the runner would (no kernel)."""
    started = (datetime.now(timezone.utc) - timedelta(days=days_ago)).replace(microsecond=0)
    run_id = f"{started:%Y%m%d-%H%M%S}-{n:04x}"
    rel = f"{started:%Y-%m-%d}/{started:%H%M%S}_health-check_sandbox{'_' + incident if incident else ''}-{n:04x}"
    folder = tmp_path / run_id
    folder.mkdir()
    prov = {"run_id": run_id, "runbook": "health-check", "env": "sandbox", "incident": incident,
            "started_at": started.isoformat(), "finished_at": started.isoformat(), "parameters": {}}
    (folder / "verdict.json").write_text(json.dumps({"run_id": run_id, "runbook": "health-check", "env": "sandbox",
                                                     "status": "OK", "exit_code": 0, "summary": "OK: made up",
                                                     "findings": [], "provenance": prov}))
    (folder / "report.html").write_text(f"<html>{run_id}</html>")
    (folder / "notebook.ipynb").write_text('{"cells": []}')
    record = {"run_id": run_id, "runbook": "health-check", "env": "sandbox", "incident": incident, "status": "OK",
              "exit_code": 0, "summary": "OK: made up", "top_finding": None, "started_at": started.isoformat(),
              "finished_at": started.isoformat(), "duration_s": 1.0, "report_dir": rel, "redactions": 0,
              "error": None}
    archive = open_archive(url)
    archive.put_folder(folder, rel)
    catalog.file_run(archive, record)
    return record


def test_prune_and_bundle_work_on_a_bucket_as_on_a_folder(s3_archive, tmp_path):
    old, kept, recent = (_made_up(s3_archive, 1, 40, None, tmp_path), _made_up(s3_archive, 2, 40, "INC-9", tmp_path),
                         _made_up(s3_archive, 3, 0.1, None, tmp_path))
    pruned = cli("reports", "prune", "--keep-days", "7", "--archive", s3_archive, "--output", str(tmp_path / "out"))
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("removed 1 run(s)") and "kept 1 older run(s) tied to an incident" in pruned.stdout
    assert [r["run_id"] for r in runs(s3_archive)] == [kept["run_id"], recent["run_id"]]
    assert not _files(s3_archive, old["report_dir"]), "the old report's objects are gone"
    assert _files(s3_archive, kept["report_dir"]) == REPORT_FILES
    zipped = tmp_path / "inc9.zip"
    made = cli("bundle", "--incident", "INC-9", "--archive", s3_archive, "--out", str(zipped),
               "--output", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    with zipfile.ZipFile(zipped) as zf:
        assert {n for n in zf.namelist() if n.startswith("reports/")} == \
            {f"reports/{kept['report_dir']}/{name}" for name in REPORT_FILES}
    verified = cli("bundle", "--verify", str(zipped))
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
