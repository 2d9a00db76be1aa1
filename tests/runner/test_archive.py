"""The archive commands: `reports` filters, `reports prune` retention (incident runs are never deleted; the records,
index.html and the day pages agree afterwards), `bundle --incident` and `bundle --verify`.

Archives are made up: report folders made with the runner's own make_run_dir and filed with catalog.file_run,
records shaped as execute.finish writes them; one test files real runs on the sandbox."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aias_runbooks.runner import archive, catalog
from aias_runbooks.runner.report import make_run_dir

from ..helpers import cli

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _file(root: Path, n: int, days_ago: float, runbook: str = "health-check", status: str = "OK",
          incident: str | None = None) -> dict:
    """One run as the runner files it: a report folder (notebook, HTML, verdict with provenance) and its line."""
    started = NOW - timedelta(days=days_ago, seconds=n)
    folder = make_run_dir(root, started, runbook, "sandbox", incident)
    run_id = f"{started:%Y%m%d-%H%M%S}-{n:04x}"
    exit_code = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[status]
    prov = {"run_id": run_id, "runbook": runbook, "env": "sandbox", "incident": incident, "operator": "test",
            "host": "vm", "started_at": started.isoformat(), "finished_at": started.isoformat(), "duration_s": 1.0,
            "parameters": {"environment": "sandbox", "samples": 10 + n}, "git": "abc", "python": "3.11.7",
            "versions": {"aias-runbooks": "0.1.0", "papermill": "2.7.0"}}
    verdict = {"runbook": runbook, "env": "sandbox", "run_id": run_id, "status": status, "exit_code": exit_code,
               "summary": f"{status}: made up", "findings": [], "provenance": prov, "redactions": 0}
    (folder / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
    (folder / "notebook.ipynb").write_text('{"cells": []}\n')
    (folder / "report.html").write_text(f"<html>{run_id}</html>\n")
    record = {"run_id": run_id, "runbook": runbook, "env": "sandbox", "incident": incident, "status": status,
              "exit_code": exit_code, "summary": f"{status}: made up", "top_finding": None,
              "started_at": started.isoformat(), "finished_at": started.isoformat(), "duration_s": 1.0,
              "report_dir": folder.relative_to(root).as_posix(), "redactions": 0, "error": None}
    catalog.file_run(root, record)
    return record


@pytest.fixture
def archive_root(tmp_path) -> tuple[Path, dict[str, dict]]:
    """Twelve runs over 40 days: runbooks, statuses and one incident mixed."""
    root = tmp_path / "output"
    runs = {}
    for n, (days, runbook, status, incident) in enumerate([
            (0.01, "health-check", "OK", None), (0.5, "database-health", "WARNING", None),
            (1.5, "health-check", "CRITICAL", "INC-7"), (2.5, "high-error-rate", "CRITICAL", "INC-7"),
            (3, "health-check", "OK", None), (8, "database-health", "OK", None),
            (10, "health-check", "UNKNOWN", None), (15, "health-check", "OK", "INC-3"),
            (20, "high-error-rate", "OK", None), (30, "health-check", "WARNING", None),
            (35, "database-health", "OK", "INC-3"), (40, "health-check", "OK", None)]):
        record = _file(root, n, days, runbook, status, incident)
        runs[record["run_id"]] = record
    return root, runs


def _listed(root: Path, *args: str) -> list[str]:
    result = cli("reports", "--output", str(root), "--limit", "0", *args)
    assert result.returncode == 0 and not result.stderr, result.stdout + result.stderr
    return re.findall(r"\b\d{8}-\d{6}-[0-9a-f]{4}\b", result.stdout)


def _expect(runs: dict[str, dict], keep) -> list[str]:
    chosen = [r for r in runs.values() if keep(r)]
    return [r["run_id"] for r in sorted(chosen, key=lambda r: r["started_at"], reverse=True)]


def test_reports_lists_every_run_newest_first_and_filters_combine(archive_root):
    root, runs = archive_root
    assert _listed(root) == _expect(runs, lambda r: True)
    assert _listed(root, "--runbook", "health-check") == _expect(runs, lambda r: r["runbook"] == "health-check")
    assert _listed(root, "--status", "critical") == _expect(runs, lambda r: r["status"] == "CRITICAL")
    assert _listed(root, "--incident", "INC-3") == _expect(runs, lambda r: r["incident"] == "INC-3")
    week = NOW - timedelta(days=7)
    assert _listed(root, "--since", "7d") == _expect(runs, lambda r: r["started_at"] >= week.isoformat())
    day = (NOW - timedelta(days=9)).date()
    assert _listed(root, "--since", day.isoformat(), "--runbook", "health-check", "--status", "OK") == _expect(
        runs, lambda r: r["started_at"] >= f"{day}T00:00:00+00:00" and r["runbook"] == "health-check"
        and r["status"] == "OK")
    assert _listed(root, "--runbook", "migrations") == [], "a runbook with no run is an empty answer, not an error"


def test_reports_limit_shows_the_newest_and_says_how_many_matched(archive_root):
    root, runs = archive_root
    result = cli("reports", "--output", str(root), "--limit", "3")
    assert re.findall(r"\b\d{8}-\d{6}-[0-9a-f]{4}\b", result.stdout) == _expect(runs, lambda r: True)[:3]
    assert "3 of 12 run(s), newest first" in result.stdout


def test_a_corrupt_record_or_a_killed_write_is_never_listed(archive_root):
    root, runs = archive_root
    day = root / catalog.RUNS / f"{NOW:%Y-%m-%d}"
    (day / "000001000000_corrupt-0001.json").write_text("not json at all\n")
    (day / ".000002000000_torn-0002.json.abc.tmp").write_text('{"run_id": "torn", "runbook": "health-ch')
    assert _listed(root) == _expect(runs, lambda r: True)
    result = cli("reports", "--output", str(root), "--limit", "3", "--status", "OK")
    assert f"3 of {len(_expect(runs, lambda r: r['status'] == 'OK'))} run(s)" in result.stdout, result.stdout


@pytest.mark.parametrize(("args", "names"), [
    (["--status", "BAD"], "OK, WARNING, CRITICAL, UNKNOWN"),
    (["--since", "last week"], "90m, 24h, 7d, 2w"),
    (["--since", "2026-13-45"], "a UTC date (2026-11-20)"),
    (["--runbook", "no-such-runbook"], "health-check"),
    (["--runbook", "../etc"], "health-check"),
    (["--incident", "INC 1; rm"], "e.g. INC-1234"),
    (["--limit", "-1"], "whole number"),
])
def test_a_bad_filter_is_one_line_naming_what_is_valid(archive_root, args, names):
    root, _ = archive_root
    result = cli("reports", "--output", str(root), *args)
    assert result.returncode == 3 and not result.stdout
    assert len(result.stderr.splitlines()) == 1 and names in result.stderr, result.stderr


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _catalogue_agrees(root: Path) -> list[dict]:
    """The records, index.html and the closed days' pages and segments tell the same story; returns the runs."""
    lines = catalog.read_runs(root)
    index = re.findall(r'href="([0-9-]+/[^"/]+)/report.html"', (root / "index.html").read_text())
    newest = sorted(lines, key=lambda r: r["started_at"], reverse=True)[:catalog.INDEX_RUNS]
    assert index == [r["report_dir"] for r in newest]
    closed = f"{NOW - timedelta(days=catalog.CLOSED_AFTER_DAYS):%Y-%m-%d}"
    paged = [d for p in sorted((root / "archive").glob("*.html"))
             for d in re.findall(r'href="\.\./([0-9-]+/[^"/]+)/report.html"', p.read_text())]
    assert sorted(paged) == sorted(r["report_dir"] for r in lines if r["started_at"][:10] <= closed), \
        "every run of a closed day on its day's page, and no other"
    assert sum(int(p.name.split(".")[1]) for p in (root / catalog.DAYS).glob("*.jsonl")) == len(paged)
    assert f"of {len(lines)} run(s)" in (root / "index.html").read_text()
    assert all((root / r["report_dir"] / "verdict.json").is_file() for r in lines), "every run's report is there"
    return lines


def test_prune_keeps_incident_runs_and_removes_the_rest_older_than_n_days(archive_root):
    root, runs = archive_root
    result = cli("reports", "prune", "--keep-days", "7", "--output", str(root))
    assert result.returncode == 0, result.stderr
    old_free = [r for r in runs.values() if r["started_at"] < (NOW - timedelta(days=7)).isoformat()
                and not r["incident"]]
    kept_incident = [r for r in runs.values() if r["started_at"] < (NOW - timedelta(days=7)).isoformat()
                     and r["incident"]]
    assert len(old_free) == 5 and len(kept_incident) == 2
    assert re.match(r"removed 5 run\(s\) started before .* \(\d+(\.\d)? (bytes|KiB) of reports\); kept 2 older "
                    r"run\(s\) tied to an incident; 7 run\(s\) remain$", result.stdout.strip()), result.stdout
    lines = _catalogue_agrees(root)
    assert {r["run_id"] for r in lines} == set(runs) - {r["run_id"] for r in old_free}
    assert not any((root / r["report_dir"]).exists() for r in old_free)
    assert all((root / r["report_dir"] / "report.html").is_file() for r in kept_incident)


def test_prune_over_several_days_leaves_no_stale_page(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "INDEX_RUNS", 5)
    root = tmp_path / "output"
    for n in range(23):
        _file(root, n, days_ago=20 - n * 0.5 if n < 18 else 1, incident="INC-1" if n == 2 else None)
    catalog.rebuild(root)   # every closed day paged (a filing closes one at a time)
    pages = len(list((root / "archive").glob("*.html")))
    assert pages >= 8
    pruned = archive.prune(root, keep_days=7)
    assert len(pruned.removed) == 17 and pruned.kept_for_incidents == 1 and pruned.remaining == 6
    assert pruned.bytes > 0
    incident_day = next(r for r in catalog.read_runs(root) if r["incident"])["started_at"][:10]
    assert [p.stem for p in (root / "archive").glob("*.html")] == [incident_day], "only the incident run's day"
    _catalogue_agrees(root)
    _file(root, 99, days_ago=0)   # the next run is filed on the rebuilt pages
    assert len(_catalogue_agrees(root)) == 7


def test_a_dry_run_changes_nothing(archive_root):
    root, runs = archive_root
    before = _snapshot(root)
    result = cli("reports", "prune", "--keep-days", "7", "--dry-run", "--output", str(root))
    assert result.returncode == 0 and "would remove 5 run(s)" in result.stdout and "nothing changed" in result.stdout
    assert _snapshot(root) == before


def test_prune_refuses_a_keep_days_below_one(archive_root):
    root, _ = archive_root
    before = _snapshot(root)
    result = cli("reports", "prune", "--keep-days", "0", "--output", str(root))
    assert result.returncode == 3 and "whole days from 1" in result.stderr and _snapshot(root) == before


def _file_recent(root: str, start: int) -> None:
    for n in range(start, start + 15):
        _file(Path(root), n, days_ago=0)


def test_runs_filed_during_a_prune_are_never_lost(tmp_path):
    root = tmp_path / "output"
    old = [_file(root, n, days_ago=30) for n in range(40)]
    filers = [multiprocessing.Process(target=_file_recent, args=(str(root), 1000 * (k + 1))) for k in range(3)]
    for f in filers:
        f.start()
    pruned = archive.prune(root, keep_days=7)
    for f in filers:
        f.join(120)
    assert all(f.exitcode == 0 for f in filers)
    assert len(pruned.removed) == 40
    lines = _catalogue_agrees(root)
    assert len(lines) == 45 and not {r["run_id"] for r in old} & {r["run_id"] for r in lines}


def _hand_edit(root: Path, record: dict, report_dir: str) -> None:
    """Rewrite a run's record, and its day's segment if the day is closed, with another report_dir, as someone with
    write access to the archive could."""
    path = root / catalog.record_path(record)
    path.write_text(json.dumps(json.loads(path.read_text()) | {"report_dir": report_dir}))
    for segment in (root / catalog.DAYS).glob(f"{record['started_at'][:10]}.*.jsonl"):
        segment.write_text(segment.read_text().replace(json.dumps(record["report_dir"]), json.dumps(report_dir)))


def _bundle(root: Path, *args: str, key: str | None = None):
    """`aias-runbooks bundle`, with AIAS_BUNDLE_KEY set to `key` (unset when None, whatever this shell has)."""
    env = {k: v for k, v in os.environ.items() if k != "AIAS_BUNDLE_KEY"} | ({"AIAS_BUNDLE_KEY": key} if key else {})
    return cli("bundle", "--output", str(root), *args, env=env)


def test_bundle_holds_every_run_of_the_incident_and_only_those(archive_root, tmp_path):
    root, runs = archive_root
    (root / "audit.jsonl").write_text(
        json.dumps({"run_id": "x", "incident": "INC-7", "action": "rollback", "phase": "finished"}) + "\n"
        + json.dumps({"run_id": "y", "incident": "INC-3", "action": "terminate", "phase": "finished"}) + "\n")
    out = tmp_path / "inc7.zip"
    result = _bundle(root, "--incident", "INC-7", "--out", str(out))
    assert result.returncode == 0 and str(out) in result.stdout, result.stderr
    incident = [r for r in runs.values() if r["incident"] == "INC-7"]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        audit = zf.read("audit.jsonl").decode()
    expected = {f"reports/{r['report_dir']}/{name}" for r in incident
                for name in ("verdict.json", "notebook.ipynb", "report.html")}
    assert names == expected | {"runs.jsonl", "audit.jsonl", "manifest.json"}
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}
    assert {r["run_id"]: (r["status"], r["parameters"]["samples"]) for r in manifest["runs"]} == {
        r["run_id"]: (r["status"], 10 + int(r["run_id"][-4:], 16)) for r in incident}
    assert manifest["incident"] == "INC-7" and manifest["versions"]["papermill"] == ["2.7.0"]
    assert "rollback" in audit and "terminate" not in audit, "only the incident's audit records"
    verified = _bundle(root, "--verify", str(out))
    assert verified.returncode == 0 and len(verified.stdout.splitlines()) == 1 and "intact" in verified.stdout


def test_a_bundle_masks_a_secret_an_old_audit_record_still_holds(archive_root, tmp_path):
    """An audit line written before audit records were redacted, quoting the profile's admin token: the bundle
    masks it with the secrets of the profile the record names, not only key shapes."""
    root, _ = archive_root
    token = "canary-admin-0f1e2d3c4b5a69788796"
    (root / "audit.jsonl").write_text(json.dumps({
        "run_id": "x", "incident": "INC-7", "env": "sandbox", "action": "clear_rate_limit", "phase": "finished",
        "outcome": f"failed: HTTP 401 from http://127.0.0.1/api/admin/rate-limits/clear: Bearer {token}"}) + "\n")
    out = tmp_path / "b.zip"
    env = os.environ | {"AIAS_SANDBOX_ADMIN_TOKEN": token}
    assert cli("bundle", "--output", str(root), "--incident", "INC-7", "--out", str(out), env=env).returncode == 0
    with zipfile.ZipFile(out) as zf:
        audit = zf.read("audit.jsonl").decode()
    assert token not in audit and "Bearer [REDACTED]" in audit and json.loads(audit)["action"] == "clear_rate_limit"


def test_a_bundle_of_an_unknown_incident_names_the_known_ones(archive_root):
    root, _ = archive_root
    result = _bundle(root, "--incident", "INC-404")
    assert result.returncode == 3 and "INC-3, INC-7" in result.stderr and len(result.stderr.splitlines()) == 1


def _rewrite(src: Path, dst: Path, change) -> None:
    """A copy of the zip with `change(name, data)` applied to each entry's content (None drops the entry)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def test_verify_fails_naming_the_file_a_byte_of_which_changed(archive_root, tmp_path):
    root, _ = archive_root
    good = tmp_path / "good.zip"
    assert _bundle(root, "--incident", "INC-3", "--out", str(good)).returncode == 0
    with zipfile.ZipFile(good) as zf:
        victim = next(n for n in zf.namelist() if n.endswith("verdict.json"))

    edited = tmp_path / "edited.zip"   # a valid zip whose one file has one byte changed
    _rewrite(good, edited, lambda name, data: data.replace(b'"status"', b'"statuS"', 1) if name == victim else data)
    result = _bundle(root, "--verify", str(edited))
    assert result.returncode == 2 and victim in result.stderr and "SHA-256" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not result.stdout

    raw = bytearray(good.read_bytes())  # one byte flipped inside the stored (compressed) data of that file
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo(victim)
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[data_start + info.compress_size // 2] ^= 0x01
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(raw))
    result = _bundle(root, "--verify", str(flipped))
    assert result.returncode == 2 and victim in result.stderr, result.stderr


def test_verify_fails_on_a_file_added_or_removed(archive_root, tmp_path):
    root, _ = archive_root
    good = tmp_path / "good.zip"
    assert _bundle(root, "--incident", "INC-3", "--out", str(good)).returncode == 0
    added = tmp_path / "added.zip"
    _rewrite(good, added, lambda name, data: data)
    with zipfile.ZipFile(added, "a") as zf:
        zf.writestr("reports/extra.txt", "slipped in")
    result = _bundle(root, "--verify", str(added))
    assert result.returncode == 2 and "reports/extra.txt" in result.stderr and "not in the manifest" in result.stderr
    removed = tmp_path / "removed.zip"
    _rewrite(good, removed, lambda name, data: None if name == "runs.jsonl" else data)
    result = _bundle(root, "--verify", str(removed))
    assert result.returncode == 2 and "runs.jsonl: in the manifest but not in the zip" in result.stderr
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("hello")
    assert _bundle(root, "--verify", str(not_zip)).returncode == 2
    assert _bundle(root, "--verify", str(tmp_path / "absent.zip")).returncode == 3


def test_an_existing_bundle_is_never_overwritten(archive_root, tmp_path):
    root, _ = archive_root
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"someone's file")
    result = _bundle(root, "--incident", "INC-7", "--out", str(taken))
    assert result.returncode == 3 and "never overwritten" in result.stderr and taken.read_bytes() == b"someone's file"
    first, second = _bundle(root, "--incident", "INC-7"), _bundle(root, "--incident", "INC-7")
    made = sorted((root / "bundles").glob("*.zip"))
    assert first.returncode == second.returncode == 0 and len(made) == 2, "the default name is always a new file"
    assert not list((root / "bundles").glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_two_real_incident_runs_are_bundled_and_verified(run, tmp_path):
    first = run("health-check", "-p", "samples=10", "--incident", "INC-X")
    second = run("health-check", "-p", "samples=10", "--incident", "INC-X")
    other = run("health-check", "-p", "samples=10")
    assert {first.proc.returncode, second.proc.returncode, other.proc.returncode} == {0}, first.proc.stderr
    output = first.output
    listed = cli("reports", "--output", str(output), "--incident", "INC-X")
    assert listed.returncode == 0 and "\n2 run(s), newest first" in listed.stdout, listed.stdout
    out = tmp_path / "INC-X.zip"
    made = cli("bundle", "--incident", "INC-X", "--out", str(out), "--output", str(output))
    assert made.returncode == 0, made.stderr
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = zf.namelist()
    assert {r["run_id"] for r in manifest["runs"]} == {first.verdict["provenance"]["run_id"],
                                                        second.verdict["provenance"]["run_id"]}
    assert all(r["parameters"]["samples"] == 10 and r["status"] == "OK" for r in manifest["runs"])
    for folder in (first.folder, second.folder):
        rel = folder.relative_to(output).as_posix()
        assert {f"reports/{rel}/{p.name}" for p in folder.iterdir()} <= set(names)
    assert not [n for n in names if n.startswith(f"reports/{other.folder.relative_to(output).as_posix()}/")]
    verified = cli("bundle", "--verify", str(out))
    assert verified.returncode == 0 and "2 run(s)" in verified.stdout, verified.stdout + verified.stderr


def test_trends_reads_one_point_per_run_from_the_verdicts(archive_root):
    from aias_runbooks import trends
    from aias_runbooks.thresholds import load_thresholds
    root, runs = archive_root
    thresholds = load_thresholds()
    assert trends.finding(trends.points(root, "sandbox", 30, 100), thresholds, 30).code == "TRENDS_NO_DATA"
    evidence = {"health-check": ("API_LATENCY_P95_HIGH", {"p95_ms": 640.0}),
                "high-error-rate": ("ERROR_RATE_OK", {"error_rate_pct": 0.2}),
                "database-connection-errors": ("DB_POOL_SATURATED", {"server_message": "too many clients"})}
    for n, runbook in enumerate(evidence):
        record = _file(root, 100 + n, days_ago=1, runbook=runbook)
        code, values = evidence[runbook]
        path = root / record["report_dir"] / "verdict.json"
        verdict = json.loads(path.read_text())
        verdict["findings"] = [{"code": code, "severity": "OK", "title": "", "evidence": values, "next_steps": []}]
        path.write_text(json.dumps(verdict))
    points = trends.points(root, "sandbox", 30, 100)
    assert sorted(zip(points["metric"], points["value"], strict=True)) == [("error_rate_pct", 0.2),
                                                                           ("health_p95_ms", 640.0)]
    assert trends.points(root, "production", 30, 100).empty, "only the environment's own runs"
    found = trends.finding(points, thresholds, 30)
    assert found.code == "TRENDS_OK" and found.severity.value == "OK" and "1 point(s) above" in found.title
    assert trends.chart(points, thresholds) is not None


def test_a_hand_edited_report_dir_never_leads_prune_or_bundle_out_of_the_archive(tmp_path):
    root = tmp_path / "output"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the archive's")
    (root / "2026-01-01").mkdir(parents=True)
    (root / "2026-01-01" / "link").symlink_to(outside)
    for n, rel in enumerate(["../precious", str(outside), "2026-01-01/link"]):
        _hand_edit(root, _file(root, 200 + n, days_ago=60, incident="INC-9" if n == 2 else None), rel)
    pruned = archive.prune(root, keep_days=7)
    assert len(pruned.removed) == 2 and pruned.refused == 2 and not pruned.missing_folders
    assert (outside / "keep.txt").read_text() == "not the archive's"
    result = cli("bundle", "--incident", "INC-9", "--out", str(tmp_path / "b.zip"), "--output", str(root))
    assert result.returncode == 0 and "missing from the archive" in result.stderr
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert not [n for n in zf.namelist() if n.startswith("reports/")]


def test_prune_deletes_only_report_folders_no_retained_line_or_incident_still_names(archive_root, tmp_path):
    """Hand-edited or corrupt catalogue lines, each old and tied to no incident, name what prune must never delete:
    a whole day folder (holding an incident's run), the bundles folder, an incident run's folder through `..` or
    by its absolute path, the folder of an incident run (directly), and the folder of a recent run."""
    root, runs = archive_root
    assert _bundle(root, "--incident", "INC-3").returncode == 0
    bundles = sorted((root / "bundles").glob("*.zip"))
    incident = [r for r in runs.values() if r["incident"] == "INC-3"]
    recent = next(r for r in runs.values() if r["started_at"] > (NOW - timedelta(days=1)).isoformat())
    old_incident_dir = incident[0]["report_dir"]
    day = old_incident_dir.split("/")[0]
    hostile = [day, "bundles", f"{day}/../{old_incident_dir}", str(root / old_incident_dir), old_incident_dir,
               recent["report_dir"], f"{day}/", f"./{old_incident_dir}", "."]
    for n, report_dir in enumerate(hostile):
        record = _file(root, 300 + n, days_ago=60)
        shutil.rmtree(root / record["report_dir"])        # its own folder: gone, as after an earlier prune
        _hand_edit(root, record, report_dir)
    before = _snapshot(root)
    result = cli("reports", "prune", "--keep-days", "7", "--output", str(root))
    assert result.returncode == 0, result.stderr
    assert (root / day).is_dir() and sorted((root / "bundles").glob("*.zip")) == bundles
    assert all(before[name] == data for name, data in _snapshot(root).items() if name.startswith("bundles/"))
    for kept in [*incident, *(r for r in runs.values() if r["incident"]), recent]:
        folder = root / kept["report_dir"]
        assert all((folder / name).is_file() for name in ("verdict.json", "notebook.ipynb", "report.html")), kept
    assert f"{len(hostile)} record(s) removed but their report_dir left alone" in result.stdout, result.stdout


KEY = "operator-key-0123456789abcdef"


def _tamper(src: Path, dst: Path, files: dict[str, bytes | None], runs_edit=None) -> None:
    """A copy of the bundle with `files` written (None: removed), the manifest's file list re-hashed to agree, as
    someone covering their tracks would; runs_edit(runs) may edit the manifest's runs too. manifest.hmac is kept."""
    with zipfile.ZipFile(src) as zin:
        entries = {info.filename: zin.read(info.filename) for info in zin.infolist()}
    manifest = json.loads(entries.pop("manifest.json"))
    for name, data in files.items():
        entries.pop(name, None) if data is None else entries.update({name: data})
    manifest["files"] = [{"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                         for name, data in entries.items() if name != "manifest.hmac"]
    if runs_edit:
        runs_edit(manifest["runs"])
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in entries.items():
            zout.writestr(name, data)
        zout.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")


def _verified(root: Path, path: Path, key: str | None = None) -> tuple[int, str]:
    result = _bundle(root, "--verify", str(path), key=key)
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    assert (result.stdout if result.returncode == 0 else result.stderr) == lines[0] + "\n"
    return result.returncode, lines[0]


@pytest.fixture
def inc7(archive_root, tmp_path) -> tuple[Path, Path, dict]:
    """INC-7's bundle, unsigned: (archive root, the zip, {run_id: (its report folder in the zip, status)})."""
    root, runs = archive_root
    good = tmp_path / "good.zip"
    assert _bundle(root, "--incident", "INC-7", "--out", str(good)).returncode == 0
    reports = {r["run_id"]: (f"reports/{r['report_dir']}", r["status"])
               for r in runs.values() if r["incident"] == "INC-7"}
    return root, good, reports


def test_verify_says_what_an_unsigned_bundle_proves(inc7):
    root, good, _ = inc7
    code, line = _verified(root, good)
    assert code == 0 and "unsigned: proves only internal consistency, not origin" in line


def test_verify_fails_when_the_manifest_rewrites_a_run_to_ok(inc7, tmp_path):
    root, good, reports = inc7
    critical = next(run_id for run_id, (_, status) in reports.items() if status == "CRITICAL")

    def to_ok(runs):
        run = next(r for r in runs if r["run_id"] == critical)
        run.update(status="OK", exit_code=0, summary="OK: all good")

    edited = tmp_path / "ok.zip"
    _tamper(good, edited, {}, to_ok)
    code, line = _verified(root, edited)
    assert code == 2 and critical in line and "status" in line and "'OK'" in line, line


def test_verify_fails_when_a_verdict_is_changed_and_rehashed(inc7, tmp_path):
    root, good, reports = inc7
    run_id, (folder, status) = next(iter(reports.items()))
    with zipfile.ZipFile(good) as zf:
        verdict = json.loads(zf.read(f"{folder}/verdict.json"))
    edited = tmp_path / "verdict.zip"
    _tamper(good, edited, {f"{folder}/verdict.json": json.dumps(verdict | {"status": "OK", "exit_code": 0}).encode()})
    code, line = _verified(root, edited)
    assert code == 2 and run_id in line and "status" in line, line
    both = tmp_path / "both.zip"       # and the manifest's run made to agree: the catalogue line still says CRITICAL
    _tamper(good, both, {f"{folder}/verdict.json": json.dumps(verdict | {"status": "OK", "exit_code": 0}).encode()},
            lambda runs: next(r for r in runs if r["run_id"] == run_id).update(status="OK"))
    code, line = _verified(root, both)
    assert code == 2 and run_id in line and "runs.jsonl" in line, line


def test_verify_fails_when_a_report_is_removed_from_zip_and_manifest(inc7, tmp_path):
    root, good, reports = inc7
    run_id, (folder, _) = next(iter(reports.items()))
    with zipfile.ZipFile(good) as zf:
        gone = {n: None for n in zf.namelist() if n.startswith(folder + "/")}
    assert len(gone) == 3
    edited = tmp_path / "removed.zip"
    _tamper(good, edited, gone)
    code, line = _verified(root, edited)
    assert code == 2 and run_id in line and folder in line, line


@pytest.mark.parametrize("name, why", [
    ("reports/../../outside.txt", "'..'"), ("/tmp/outside.txt", "absolute"), ("C:/outside.txt", "absolute"),
    ("reports\\..\\..\\outside.txt", "backslash"), ("reports//x.txt", "empty or '.'"),
    ("reports/./x.txt", "empty or '.'")])
def test_verify_refuses_an_entry_name_that_would_land_elsewhere(inc7, tmp_path, name, why):
    root, good, _ = inc7
    edited = tmp_path / "unsafe.zip"
    _tamper(good, edited, {name: b"planted"})
    code, line = _verified(root, edited)
    assert code == 2 and "unsafe entry name" in line and why in line, line


def test_verify_refuses_two_entries_one_file_system_would_merge(inc7, tmp_path):
    root, good, reports = inc7
    folder, _ = next(iter(reports.values()))
    edited = tmp_path / "case.zip"
    _tamper(good, edited, {f"{folder}/REPORT.html": b"<html>planted</html>"})
    code, line = _verified(root, edited)
    assert code == 2 and "REPORT.html" in line and "twice" in line, line


def test_a_signed_bundle_edited_and_rehashed_fails_with_the_key(archive_root, tmp_path):
    root, runs = archive_root
    signed = tmp_path / "signed.zip"
    made = _bundle(root, "--incident", "INC-7", "--out", str(signed), key=KEY)
    assert made.returncode == 0 and "signed: HMAC-SHA256" in made.stdout, made.stdout + made.stderr
    with zipfile.ZipFile(signed) as zf:
        assert KEY not in zf.read("manifest.hmac").decode() and KEY.encode() not in signed.read_bytes()
        html = next(n for n in zf.namelist() if n.endswith("report.html"))
    code, line = _verified(root, signed, key=KEY)
    assert code == 0 and "signed" in line and "matches AIAS_BUNDLE_KEY" in line, line
    edited = tmp_path / "edited.zip"     # internally consistent: only the key can tell
    _tamper(signed, edited, {html: b"<html>nothing happened</html>"})
    code, line = _verified(root, edited)
    assert code == 0 and "not origin" in line, "without the key only consistency is checked, and it says so"
    code, line = _verified(root, edited, key=KEY)
    assert code == 2 and "HMAC-SHA256" in line and "AIAS_BUNDLE_KEY" in line, line
    assert _verified(root, signed, key=KEY[::-1])[0] == 2, "another key"
    stripped = tmp_path / "stripped.zip"
    _tamper(signed, stripped, {"manifest.hmac": None})
    code, line = _verified(root, stripped, key=KEY)
    assert code == 2 and "unsigned" in line and "AIAS_BUNDLE_KEY" in line, line


def test_a_bundle_key_too_short_is_refused(archive_root, tmp_path):
    root, _ = archive_root
    result = _bundle(root, "--incident", "INC-7", "--out", str(tmp_path / "b.zip"), key="short")
    assert result.returncode == 3 and "AIAS_BUNDLE_KEY" in result.stderr and "16" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "short" not in result.stderr.replace("too short", "")
    assert not (tmp_path / "b.zip").exists()
