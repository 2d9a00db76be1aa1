"""Runbook notebooks are stored clean and declare typed, documented parameters."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from aias_runbooks.findings import VERDICT_MIME
from aias_runbooks.runner import kernel
from aias_runbooks.runner.parameterize import load_runbook

from ..helpers import ROOT, forget_recent_failures

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"strip outputs from {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_are_typed_and_documented(path):
    info = load_runbook(path.stem)
    assert info.description, "metadata.aias.description is the one line `aias-runbooks list` shows"
    assert info.parameters["environment"].default == "sandbox"
    for param in info.parameters.values():
        assert param.type in {"int", "float", "str", "bool"} and param.help, param


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_runs_top_to_bottom_with_defaults_as_in_jupyterlab(sandbox, path, monkeypatch, tmp_path):
    """No runner, no injected parameters: what an engineer gets from Run All in JupyterLab."""
    forget_recent_failures()   # a healthy platform: no incident an earlier test file simulated in the last hour
    monkeypatch.setenv("AIAS_OUTPUT_DIR", str(tmp_path))   # not the incidents a developer's own runs left in output/
    nb = nbformat.read(path, as_version=4)
    with kernel.config() as config:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       config=config).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    verdict = next(o["data"][VERDICT_MIME] for o in outputs if VERDICT_MIME in o.get("data", {}))
    # maintenance-window's clock is the current time: in the 48 h before each monthly window the notice is due
    problems = {f["code"] for f in verdict["findings"] if f["severity"] != "OK"}
    assert verdict["run_id"].startswith("interactive-")
    assert verdict["status"] == "OK" or problems == {"MAINTENANCE_NOTICE_DUE"}, verdict["findings"]
