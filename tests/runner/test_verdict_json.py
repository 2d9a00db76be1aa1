"""Evidence keeps its order and never holds NaN: through the runner's report (verdict.json, from a saved notebook
that sorts keys) and in the JSON-lines records (audit.jsonl)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import nbformat
import numpy as np
import pandas as pd

from aias_runbooks.findings import Finding, Severity, Verdict
from aias_runbooks.records import append_jsonl
from aias_runbooks.runner.report import provenance, read_verdict, write_report


def _strict(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


MISSING = {"p95_ms": float("nan"), "max_ms": math.inf, "numpy_nan": np.float64("nan"), "na": pd.NA,
           "nat": pd.NaT, "np_nat": np.datetime64("NaT"), "column": pd.Series([1.5, np.nan]),
           "kept": np.int64(7)}


RANKED = {"zeta-app": 9, "alpha-app": 5, "mid-app": 1}   # by count, not by name


def test_nan_is_null_and_order_is_kept_through_the_runner(tmp_path):
    finding = Finding("DB_POOL_OK", Severity.OK, "Pool fine.", {"top_applications": RANKED, **MISSING})
    data = finding.to_dict()
    json.dumps(data, allow_nan=False)   # raises on NaN
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("rb.verdict()"))
    # the notebook displayed the verdict; saving it sorts its keys; the kernel's journal kept them in order
    verdict = Verdict("database-connection-errors", "sandbox", "20260101-000000-abcd", [finding])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=verdict._repr_mimebundle_())]
    saved = nbformat.reads(nbformat.writes(nb), as_version=4)
    read = read_verdict(saved, verdict.runbook, verdict.env, verdict.run_id, None, journal=[data])
    now = datetime.now(timezone.utc)
    prov = provenance(verdict.run_id, verdict.runbook, "sandbox", None, "alice", now, now,
                      {"samples": float("nan")})
    write_report(tmp_path, saved, read, prov)
    written = _strict((tmp_path / "verdict.json").read_text())
    evidence = written["findings"][0]["evidence"]
    assert list(evidence["top_applications"]) == ["zeta-app", "alpha-app", "mid-app"]
    assert [evidence[k] for k in ("p95_ms", "max_ms", "numpy_nan", "na", "nat", "np_nat")] == [None] * 6
    assert evidence["column"] == [1.5, None] and evidence["kept"] == 7
    assert written["provenance"]["parameters"] == {"samples": None}


def test_json_lines_keep_order_and_write_null(tmp_path):
    path = tmp_path / "audit.jsonl"
    append_jsonl(path, {"phase": "started", "targets": RANKED, "mean_ms": float("nan")})
    line = path.read_text().splitlines()[0]
    record = _strict(line)
    assert list(record) == ["phase", "targets", "mean_ms"] and list(record["targets"]) == list(RANKED)
    assert record["mean_ms"] is None
