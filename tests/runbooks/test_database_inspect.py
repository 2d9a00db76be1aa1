"""database-inspect (issue 24, part 2): every database figure as CSV and JSON in the report folder, listed with row
counts, holding the same numbers database-health judges, scanned for secrets like the rest of the report and
bundled with its incident; and FIGURES, the one list, covers every figure query the database runbooks run."""

from __future__ import annotations

import csv
import json
import re
import zipfile

import psycopg

from aias_runbooks import inspect, paths
from aias_runbooks.sources import database
from aias_runbooks.thresholds import load_thresholds

from ..helpers import cli, finding, sandbox_dsn, sandbox_env

# What the database runbooks read that is the application's data, not the database's figures: the playbook's
# Common Database Queries (sign-ups, tiers, workflows, error logs) are left out of the export.
APP_QUERIES = {"active_users_30d", "subscription_tiers", "workflow_usage_7d", "recent_error_logs"}
DATABASE_RUNBOOKS = ["database-health", "database-connection-errors"]


def _files(result) -> dict[str, tuple[list[dict], dict]]:
    """Each figure's CSV rows and JSON document, by query, from the run's report folder."""
    folder = result.folder / inspect.FOLDER
    found = {}
    for name in inspect.FIGURES:
        with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        found[name] = (rows, json.loads((folder / f"{name}.json").read_text(encoding="utf-8")))
    return found


def test_every_figure_query_of_the_database_runbooks_is_exported():
    """A new check's query in database-health or database-connection-errors must join FIGURES (or be app data)."""
    called = set()
    for slug in DATABASE_RUNBOOKS:
        cells = json.loads((paths.notebooks_dir() / f"{slug}.ipynb").read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        called |= set(re.findall(r'rb\.query\("([a-z0-9_]+)"', code))
    missing = called - APP_QUERIES - set(inspect.FIGURES)
    assert not missing, f"add to aias_runbooks/inspect.py FIGURES: {sorted(missing)}"
    thresholds = load_thresholds()
    for name in inspect.FIGURES:   # each exists, reads only, and every parameter it takes has a value
        description, sql = database.load_sql(name)
        assert description and "-- ACTION:" not in sql, name
        inspect.parameters(name, thresholds, 100, ["public"])


def test_the_figures_are_written_listed_and_hold_database_healths_numbers(run, scenario):
    scenario("sequence-near-max")
    result = run("database-inspect")
    health = run("database-health")
    assert result.proc.returncode == 0, result.verdict["findings"]
    exported = finding(result, "DB_INSPECT_EXPORTED")
    assert exported["evidence"]["figures"] == len(inspect.FIGURES) and not exported["evidence"]["failed"]
    files = _files(result)
    page = (result.folder / "report.html").read_text(encoding="utf-8")
    for name, (rows, document) in files.items():
        assert document["query"] == name and document["row_count"] == len(rows) == len(document["rows"]), name
        assert exported["evidence"]["files"][name] == len(rows)
        assert list(rows[0]) == document["columns"] if rows else True, name
        assert f"inspect/{name}.csv" in page and f"inspect/{name}.json" in page, "listed in the report"
    near = finding(health, "DB_SEQUENCE_NEAR_MAX")["evidence"]
    sequence = near["culprit"]
    (exported_row,) = [r for r in files["sequence_room"][1]["rows"] if r["sequence_name"] == sequence]
    (csv_row,) = [r for r in files["sequence_room"][0] if r["sequence_name"] == sequence]
    judged = near["sequences"][sequence]
    assert exported_row["last_value"] == judged["last_value"] == float(csv_row["last_value"])
    assert exported_row["limit_value"] == judged["limit"] == float(csv_row["limit_value"])
    assert exported_row["used_pct"] == judged["used_pct"] == float(csv_row["used_pct"])
    assert exported_row["column_name"] == near["column"]
    for table in ("public.api_requests", "public.workflow_executions"):   # sizes are figures, rows are not
        assert any(r["table_name"] == table for r in files["table_sizes"][1]["rows"])
    text = "".join((result.folder / inspect.FOLDER / f"{n}.json").read_text() for n in inspect.FIGURES)
    assert not re.search(r"[a-z0-9._-]+@[a-z0-9-]+\.[a-z]+", text), "no user's e-mail: no row of the app's tables"


def test_the_files_are_scanned_for_secrets_and_bundled_with_the_incident(run, sandbox, tmp_path):
    """A session whose application_name is the profile's Stripe key shows in connections_by_state: the scan must
    find it there, in the CSV and the JSON, before the report is filed; then `bundle` takes the files."""
    secret = sandbox_env()["AIAS_SANDBOX_STRIPE_SECRET_KEY"]
    with psycopg.connect(sandbox_dsn(), autocommit=True, application_name=secret):
        result = run("database-inspect", "--incident", "INC-24")
    folder = result.folder / inspect.FOLDER
    for suffix in ("csv", "json"):
        written = (folder / f"connections_by_state.{suffix}").read_text(encoding="utf-8")
        assert secret not in written and "[REDACTED]" in written, suffix
    assert not any(secret in p.read_text(encoding="utf-8", errors="replace") for p in result.folder.rglob("*")
                   if p.is_file())
    assert result.verdict["redactions"] >= 2
    out = tmp_path / "inc-24.zip"
    bundled = cli("bundle", "--output", str(result.output), "--incident", "INC-24", "--out", str(out))
    assert bundled.returncode == 0, bundled.stdout + bundled.stderr
    names = zipfile.ZipFile(out).namelist()
    for name in inspect.FIGURES:
        assert any(n.endswith(f"/inspect/{name}.csv") for n in names) and \
            any(n.endswith(f"/inspect/{name}.json") for n in names), name
    assert cli("bundle", "--verify", str(out)).returncode == 0
