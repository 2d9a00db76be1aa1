"""database-inspect: every database figure the database runbooks read, as CSV and JSON files in the report folder.

What `supabase inspect report` does for a Supabase project, for a postmortem or a support ticket: one export, not
the checks run one by one. The figures are the named queries of FIGURES, run as the runbooks run them (the
monitoring role, a read-only bounded session, the same parameters), so the files hold no more than the runbooks'
reports already show: statistics, settings, sizes, relation and role names, never a row of the application's
tables. Each is written to <report folder>/inspect/<query>.csv and .json; the runner scans both for secrets and
files them with the report (runner/workspace.Workspace.report, AIAS_REPORT_FILES), so `bundle` takes them too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import text

from . import paths
from .checks import db_health
from .findings import Finding, Measure, Severity, jsonable
from .sources import database

FOLDER = "inspect"   # inside the report folder
# The figures, in the report's order: query (sql/<query>.sql) -> the runbook whose checks read it. A new database
# check's query is added here, and the export, its test and the benchmark (benchmarks/db_depth.py) take it.
FIGURES: dict[str, str] = {
    "connection_limits": "database-connection-errors",
    "connections_by_state": "database-connection-errors",
    "idle_in_transaction": "database-connection-errors",
    "long_running_queries": "database-connection-errors",
    "blocking_locks": "database-connection-errors",
    "pg_stat_statements_status": "database-connection-errors",
    "slow_queries": "database-connection-errors",
    "stats_reset": "database-health",
    "cache_hit": "database-health",
    "cache_relations": "database-health",
    "index_usage": "database-health",
    "table_sizes": "database-health",
    "vacuum_stats": "database-health",
    "xid_age_databases": "database-health",
    "xid_age_tables": "database-health",
    "xid_horizon": "database-health",
    "replication_slots": "database-health",
    "sequence_room": "database-health",
    "invalid_indexes": "database-health",
    "duplicate_indexes": "database-health",
    "table_bloat": "database-health",
    "index_bloat": "database-health",
    "unused_indexes": "database-health",
    "role_settings": "database-health",
    "role_connections": "database-health",
    "disk_usage": "database-health",
    "checkpoints": "database-health",
    "rls_lint": "database-health",
    "applied_migrations": "database-health",
}
# Parameters the runbooks give these queries from their own defaults rather than thresholds.yaml.
RUNBOOK_DEFAULTS = {"min_idle_s": 10, "application": None, "min_seconds": 60}


def folder(report_files: str | None = None, run_id: str = "interactive") -> Path:
    """Where the files go: the run's staged report folder under the runner (AIAS_REPORT_FILES), else (JupyterLab)
    output/inspect/<run id>/; created owner and group only, as report folders are."""
    base = report_files or os.environ.get("AIAS_REPORT_FILES")
    where = Path(base) / FOLDER if base else paths.output_dir() / FOLDER / run_id
    where.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
    return where


def parameters(name: str, thresholds: dict[str, Any], limit: int, schemas: list[str]) -> dict[str, Any]:
    """The bound parameters the query takes, valued as its runbook values them; ValueError naming any this
    module cannot value (a new query in FIGURES whose parameter needs a line here)."""
    _, sql = database.load_sql(name)
    wanted = set(text(sql).compile().params)
    known = {"limit": limit, "schemas": schemas, "min_calls": thresholds["db_statements"]["min_calls"],
             **RUNBOOK_DEFAULTS, **db_health.seq_scan_params(thresholds), **db_health.vacuum_params(thresholds)}
    missing = wanted - known.keys()
    if missing:
        raise ValueError(f"{name}: no value for parameter(s) {', '.join(sorted(missing))}; add them to "
                         "inspect.RUNBOOK_DEFAULTS or read them from thresholds")
    return {k: known[k] for k in wanted}


def export(query: Any, thresholds: dict[str, Any], where: Path, limit: int, schemas: list[str]) -> pd.DataFrame:
    """Run every figure's query with `query` (rb.query: a failure is recorded there, DB_QUERY_FAILED) and write
    it as <query>.csv and <query>.json under `where`. Returns the listing: query, runbook, rows, files, error."""
    listing = []
    for name, runbook in FIGURES.items():
        frame = query(name, **parameters(name, thresholds, limit, schemas))
        error = frame.attrs.get("error")
        row = {"query": name, "runbook": runbook, "rows": len(frame), "csv": "", "json": "", "error": error or "",
               "description": frame.attrs.get("description", "")}
        if not error:
            frame.to_csv(where / f"{name}.csv", index=False)
            (where / f"{name}.json").write_text(json.dumps(document(name, runbook, frame), indent=1,
                                                           allow_nan=False) + "\n", encoding="utf-8")
            row |= {"csv": f"{FOLDER}/{name}.csv", "json": f"{FOLDER}/{name}.json"}
        listing.append(row)
    return pd.DataFrame(listing)


def document(name: str, runbook: str, frame: pd.DataFrame) -> dict[str, Any]:
    """A figure's JSON: what it is, its columns and its rows as plain JSON (NaN null, Decimals numbers)."""
    return {"query": name, "runbook": runbook, "description": frame.attrs.get("description", ""),
            "row_count": len(frame), "columns": [str(c) for c in frame.columns],
            "rows": [jsonable(dict(zip(frame.columns, values, strict=True)))
                     for values in frame.itertuples(index=False, name=None)]}


def exported(listing: pd.DataFrame) -> Finding:
    """DB_INSPECT_EXPORTED (OK): how many figures were written, with how many rows, and where; the queries that
    failed (each already a DB_QUERY_FAILED) are named. DB_INSPECT_INCOMPLETE (UNKNOWN) when none could be read."""
    written = listing[listing["error"] == ""]
    failed = listing[listing["error"] != ""]
    evidence = {"folder": FOLDER, "figures": len(written), "rows": int(written["rows"].sum()),
                "files": {str(r.query): int(r.rows) for r in written.itertuples()},
                "failed": {str(r.query): str(r.error) for r in failed.itertuples()}}
    measures = [Measure("figures", len(written), "", minimum=0), Measure("failed_figures", len(failed), "", minimum=0)]
    if written.empty:
        return Finding("DB_INSPECT_INCOMPLETE", Severity.UNKNOWN,
                       f"No database figure could be read ({len(failed)} queries failed): nothing was exported.",
                       evidence, ["Fix what the DB_QUERY_FAILED or DB_UNREACHABLE finding names, then run again."],
                       measures)
    title = (f"{len(written)} database figures written as CSV and JSON in {FOLDER}/ "
             f"({int(written['rows'].sum()):,} rows)")
    if not failed.empty:
        title += f"; {len(failed)} could not be read: {', '.join(failed['query'])}"
    return Finding("DB_INSPECT_EXPORTED", Severity.OK, title + ".", evidence, measures=measures)
