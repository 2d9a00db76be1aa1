"""Tests are found by what they test: every runbook of the catalogue has tests/runbooks/test_<slug>.py, every file
there names one runbook (test_<slug>.py, or test_<slug>_<aspect>.py for a runbook with more than one), and a test
file takes shared helpers from tests/helpers.py, never from conftest.py or another test file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aias_runbooks.catalogue import slugs

from ..helpers import ROOT

TESTS = ROOT / "tests"
RUNBOOK_TESTS = TESTS / "runbooks"


def runbook_named(module: Path) -> str | None:
    """The runbook a module of tests/runbooks/ names: its stem, less `test_`, is the slug (dashes as underscores),
    or starts with it and an underscore (the longest such slug)."""
    stem = module.stem.removeprefix("test_")
    named = [slug for slug in slugs() if f"{stem}_".startswith(slug.replace("-", "_") + "_")]
    return max(named, key=len, default=None)


@pytest.mark.parametrize("slug", slugs())
def test_every_runbook_has_its_test_file(slug):
    path = RUNBOOK_TESTS / f"test_{slug.replace('-', '_')}.py"
    assert path.is_file(), f"runbook {slug!r} has no {path.relative_to(ROOT)}"


def test_every_file_of_the_runbook_tests_names_a_runbook():
    modules = [p for p in RUNBOOK_TESTS.glob("*.py") if p.name != "__init__.py"]
    assert modules, "tests/runbooks/ holds no test file"
    unnamed = [p.name for p in modules if runbook_named(p) is None]
    assert not unnamed, f"tests/runbooks/ files that name no runbook (test_<slug>[_<aspect>].py): {unnamed}"


def test_the_layout_check_knows_a_stray_file_from_an_aspect():
    """The rule above, on names no runbook has and on an aspect of the longest slug that fits."""
    assert runbook_named(Path("test_database_connection_errors_locks.py")) == "database-connection-errors"
    assert runbook_named(Path("test_health_check.py")) == "health-check"
    assert runbook_named(Path("test_billing.py")) is None
    assert runbook_named(Path("test_database.py")) is None


@pytest.mark.parametrize("module", sorted(TESTS.rglob("*.py")), ids=lambda p: p.relative_to(TESTS).as_posix())
def test_shared_helpers_come_from_the_helpers_module(module):
    """A test file imports what it shares from tests/helpers.py: not from conftest.py (fixtures and hooks only) and
    not from another test file, so moving or deleting a test file never breaks another."""
    tree = ast.parse(module.read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    wrong = [name for name in imported if name.split(".")[-1] == "conftest" or name.split(".")[-1].startswith("test_")]
    assert not wrong, f"{module.relative_to(ROOT)} imports from {wrong}; shared helpers belong in tests/helpers.py"
