"""Read a runbook's parameters cell and check user input against it before any kernel starts."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from papermill.inspection import inspect_notebook

from .. import paths
from ..errors import UsageError

# The environment profile parameter every runbook declares; set by --env. (Not `env`: IPython's
# automagic reads `env: str = ...` as the %env magic.)
ENV_PARAM = "environment"
_RANGE = re.compile(r"\[(-?[\d.]+)\.\.(-?[\d.]+)\]")
_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str

    @property
    def bounds(self) -> tuple[float, float] | None:
        match = _RANGE.search(self.help)
        return (float(match.group(1)), float(match.group(2))) if match else None

    def describe(self) -> str:
        return f"{self.name}: {self.type} = {self.default!r}" + (f"  # {self.help}" if self.help else "")


@dataclass(frozen=True)
class RunbookInfo:
    slug: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Parameter]


def runbook_slugs() -> list[str]:
    return sorted(p.stem for p in paths.notebooks_dir().glob("*.ipynb"))


def load_runbook(slug: str) -> RunbookInfo:
    """The runbook's notebook, one-line description and typed parameters; UsageError lists valid slugs."""
    path = paths.notebooks_dir() / f"{slug}.ipynb"
    if not path.is_file():
        raise UsageError(f"unknown runbook '{slug}'; valid: {', '.join(runbook_slugs()) or 'none'}")
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("aias", {})
    params = {name: Parameter(name, p["inferred_type_name"], _literal(p["default"]), p["help"])
              for name, p in inspect_notebook(str(path)).items()}
    return RunbookInfo(slug, path, meta.get("title", slug), meta.get("description", ""), params)


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def validate(info: RunbookInfo, given: dict[str, Any]) -> dict[str, Any]:
    """Coerce each given value to its declared type and bounds; UsageError names the problem."""
    checked = {}
    for name, value in given.items():
        param = info.parameters.get(name)
        if param is None:
            valid = ", ".join(info.parameters) or "none"
            raise UsageError(f"runbook '{info.slug}' has no parameter '{name}'; valid: {valid}")
        checked[name] = _coerce(info.slug, param, value)
    return checked


def _coerce(slug: str, param: Parameter, value: Any) -> Any:
    expected = _TYPES.get(param.type, "a literal")
    try:
        result = _convert(param.type, value)
    except (ValueError, TypeError):
        raise UsageError(f"{slug}: parameter '{param.name}' must be {expected}, got {value!r}") from None
    bounds = param.bounds
    if bounds and not bounds[0] <= result <= bounds[1]:
        low, high = (f"{b:g}" for b in bounds)
        raise UsageError(f"{slug}: parameter '{param.name}' must be between {low} and {high}, got {result!r}")
    return result


def _convert(kind: str, value: Any) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off"}:
            return False
        raise ValueError(value)
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if kind == "float":
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if kind == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TypeError(value)
        return str(value)
    return value
