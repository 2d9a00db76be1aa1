"""Runbook notebooks are stored clean and declare typed, documented parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aias_runbooks.runner.parameterize import load_runbook

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


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
