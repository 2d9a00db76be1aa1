"""Parameters are read without papermill (fast refusals), yet exactly as papermill reads them."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest
from papermill.inspection import inspect_notebook

from aias_runbooks.errors import UsageError
from aias_runbooks.runner.parameterize import FileValue, Parameter, _literal, coerce, load_runbook

from ..helpers import ROOT

NOTEBOOKS = sorted([*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "tests" / "notebooks").glob("*.ipynb")])
HEAVY = ("papermill", "nbformat", "nbclient", "jsonschema", "pandas", "sqlalchemy", "matplotlib", "jupyter_client")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_parse_matches_papermill(path, monkeypatch):
    """`papermill --help-notebook` and our validation must agree on names, types, defaults and help."""
    monkeypatch.setenv("AIAS_NOTEBOOKS_DIR", str(path.parent))
    ours = {p.name: (p.type, p.default, p.help) for p in load_runbook(path.stem).parameters.values()}
    theirs = {name: (p["inferred_type_name"], _literal(p["default"]), p["help"])
              for name, p in inspect_notebook(str(path)).items()}
    assert list(ours) == list(theirs) and ours == theirs


REFUSALS = [
    ["run", "nope"],
    ["run", "health-check", "-p", "samples=abc"],
    ["run", "health-check", "--env", "prod"],
    ["run", "health-check", "-f", "/nonexistent.yaml"],
    ["run", "health-check", "--output", "/etc/hostname/out"],
    ["run", "health-check", "--cell-timeout", "0"],
]


def test_refusing_bad_input_imports_nothing_heavy():
    """A clean refusal costs a tenth of a second, not the 2 s of importing papermill and nbformat."""
    code = ("import contextlib, io, sys\n"
            "from aias_runbooks import cli\n"
            f"for argv in {REFUSALS!r}:\n"
            "    with contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n"
            "            assert cli.main(argv) == 3, argv\n"
            "        except SystemExit as exc:\n"
            "            assert exc.code == 3, argv\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


INT = Parameter("samples", "int", 20, "requests [1..500]")
NAME = Parameter("operator", "str", "", "your name [..8]")


@pytest.mark.parametrize(("param", "value", "message"), [
    (INT, [1, 2], "must be an integer, got a list"),
    (INT, {"a": 1}, "must be an integer, got a mapping"),
    (INT, None, "must be an integer, got null"),
    (INT, True, "must be an integer, got true or false"),
    (INT, 2.5, "must be an integer, got a number"),
    (INT, 501, "must be between 1 and 500"),
    (NAME, datetime.date(2024, 1, 1), "must be text, got a date"),
    (NAME, b"\xff", "must be text, got binary data"),
    (NAME, False, "must be text, got true or false"),
    (NAME, "\ud800", "is not valid UTF-8"),
    (NAME, "a\tb", "must not contain control characters"),
    (NAME, "x" * 9, "must be at most 8 characters, got 9"),
])
def test_file_values_are_scalars_and_never_quoted(param, value, message):
    with pytest.raises(UsageError) as caught:
        coerce("rb", param, FileValue(value, "parameters file 'p.yaml', line 3"))
    text = str(caught.value)
    assert message in text and "line 3" in text
    assert "got " + repr(value) not in text


def test_a_str_bound_only_narrows_the_text_limit():
    assert Parameter("x", "str", "", "name [..8]").max_length == 8
    assert Parameter("x", "str", "", "name [..5000]").max_length == 200
    assert Parameter("x", "str", "", "name").max_length == 200
    assert coerce("rb", INT, FileValue(7.0, "f")) == 7 and coerce("rb", INT, " 42 ") == 42
