"""Read a runbook's parameters cell and check user input against it before any kernel starts.

The parameters cell (the first cell tagged `parameters`) declares one parameter a line:

    name: type = default  # help [min..max]

`type` is int, float, bool or str. A `[min..max]` at the end of the help bounds a number; on a str parameter
it bounds the length in characters (`[..40]` or `[1..40]`) and may only narrow the default limit of
MAX_TEXT (200). A str parameter's help may also end in `[pre|post]` (the value must be one of those words) or
`[timestamp]` (empty, or an ISO 8601 time with a UTC offset: 2026-11-01T07:00:00Z, 2026-11-01T02:00-05:00), or
`[email-or-uuid]` (an email or a user id: accounts.user_reference).
Every str value (and --operator) must be valid UTF-8 text without control characters
(U+0000-U+001F, U+007F-U+009F, U+2028/U+2029) or Unicode format characters (category Cf: bidi overrides and
isolates, zero-width spaces and joiners, the BOM, soft hyphens), which are invisible and change how the text around
them is shown (an operator's name in the audit, a user's email in a report); anything else printable is accepted as
it is, hostile or not (SQL, HTML, markdown, `../`): the library binds it as a query parameter and reports escape it.

The cell is read with `json` and `ast`, not papermill/nbformat, so that refusing bad input stays fast;
tests/runner/test_parameterize.py keeps this parse equal to `papermill.inspection.inspect_notebook`, which is what
`papermill --help-notebook` shows. Messages never quote more than ~60 characters of a value, and never a
value read from a parameters file (`-f`): that file may be anything the caller can point at.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import tokenize
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import catalogue, paths
from ..accounts import user_reference
from ..catalogue import SLUG
from ..errors import UsageError
from ..input_files import StrictLoader, read_input_file
from ..printable import show
from ..timestamps import parse_timestamp

# The environment profile parameter every runbook declares; set by --env. (Not `env`: IPython's
# automagic reads `env: str = ...` as the %env magic.)
ENV_PARAM = "environment"
MAX_TEXT = 200                      # characters in a str parameter or --operator
_RANGE = re.compile(r"\[(-?[\d.]*)\.\.(-?[\d.]+)\]")
_CHOICES = re.compile(r"\[([a-z0-9_-]+(?:\|[a-z0-9_-]+)+)\]")
_TIMESTAMP = "[timestamp]"
_USER = "[email-or-uuid]"
_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INT64 = 2 ** 63
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def text_problem(value: str, limit: int = MAX_TEXT) -> str | None:
    """Why `value` is not acceptable text (not UTF-8, control or format characters, too long), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if _CONTROL.search(value):
        return "must not contain control characters"
    if found := next((c for c in value if unicodedata.category(c) == "Cf"), None):
        return (f"must not contain Unicode format characters (U+{ord(found):04X} at character "
                f"{value.index(found) + 1}: bidi controls, zero-width characters, soft hyphens are invisible); "
                "any other printable text is valid")
    if len(value) > limit:
        return f"must be at most {limit} characters, got {len(value)}"
    return None


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    help: str

    @property
    def bounds(self) -> tuple[float, float] | None:
        """`[min..max]` from the help comment (`[..max]`: no lower bound); for str, the length."""
        match = _RANGE.search(self.help)
        if not match:
            return None
        low = float(match.group(1)) if match.group(1) else (0.0 if self.type == "str" else -math.inf)
        return low, float(match.group(2))

    @property
    def max_length(self) -> int:
        """For a str parameter: MAX_TEXT, or less when the help says `[..N]`."""
        bounds = self.bounds if self.type == "str" else None
        return int(min(bounds[1], MAX_TEXT)) if bounds else MAX_TEXT

    @property
    def choices(self) -> tuple[str, ...] | None:
        """For a str parameter: the words `[a|b]` in the help allows, else None (any text)."""
        match = _CHOICES.search(self.help) if self.type == "str" else None
        return tuple(match.group(1).split("|")) if match else None

    @property
    def timestamp(self) -> bool:
        """A str parameter whose help ends in `[timestamp]`: empty or an ISO 8601 time with a UTC offset."""
        return self.type == "str" and _TIMESTAMP in self.help

    @property
    def user(self) -> bool:
        """A str parameter whose help ends in `[email-or-uuid]`: it names one user by email or user id."""
        return self.type == "str" and _USER in self.help

    def describe(self) -> str:
        return f"{self.name}: {self.type} = {self.default!r}" + (f"  # {self.help}" if self.help else "")


@dataclass(frozen=True)
class RunbookInfo:
    slug: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Parameter]


@dataclass(frozen=True)
class FileValue:
    """A value read from a -f parameters file, and where: messages name the place, never the value."""

    value: Any
    where: str


def load_runbook(slug: str) -> RunbookInfo:
    """The runbook's notebook, one-line description and typed parameters; UsageError lists valid slugs."""
    slugs = catalogue.slugs()
    if not SLUG.fullmatch(slug) or slug not in slugs:
        raise UsageError(f"unknown runbook {show(slug)}; valid: {', '.join(slugs) or 'none'}")
    path = paths.notebooks_dir() / f"{slug}.ipynb"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        meta = nb.get("metadata", {}).get("aias", {})
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        raise UsageError(f"runbook '{slug}' cannot be read: {path} is not a notebook") from None
    params = {p.name: p for p in parameters_of(slug, cells)}
    return RunbookInfo(slug, path, meta.get("title", slug), meta.get("description", ""), params)


def parameters_of(slug: str, cells: list[dict[str, Any]]) -> list[Parameter]:
    """The parameters declared in the first cell tagged `parameters` (none without one)."""
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return []
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    try:
        tree = ast.parse(source)
        comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT}
    except (SyntaxError, tokenize.TokenError) as exc:
        raise UsageError(f"runbook '{slug}': its parameters cell is not valid Python "
                         f"(line {getattr(exc, 'lineno', '?')})") from None
    params = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            annotation = node.annotation
            kind = annotation.value if isinstance(annotation, ast.Constant) else ast.unparse(annotation)
            name, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            kind, name, value = "None", node.targets[0].id, node.value
        else:
            continue
        help_text = comments.get(node.end_lineno, "").lstrip("#").strip()
        params.append(Parameter(name, str(kind), _literal(ast.get_source_segment(source, value) or ""), help_text))
    return params


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return source


# -- user input: -p pairs and -f files ------------------------------------------------------------------


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """-p KEY=VALUE pairs as a dict (the last one wins)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected -p KEY=VALUE, got {show(pair)}")
        params[key.strip()] = value
    return params


def read_params_file(path: Path) -> dict[str, FileValue]:
    """A YAML mapping of name: scalar, at most 1 MiB; UsageError names the file and the problem, not its content."""
    name = f"parameters file {show(str(path), 200)}"
    text = read_input_file(path, name)
    loader = None
    try:
        loader = StrictLoader(text)      # checks every character at once (ReaderError)
        root = loader.get_single_node()
        if root is None:
            return {}
        if not isinstance(root, yaml.MappingNode):
            raise UsageError(f"{name} must hold a mapping of name: value")
        params: dict[str, FileValue] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise UsageError(f"{name}, line {line}: merge keys (<<) are not allowed")
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str) or not key.isidentifier():
                raise UsageError(f"{name}, line {line}: each key must be a parameter name")
            if key in lines:
                raise UsageError(f"{name}, line {line}: repeats the parameter set on line {lines[key]}")
            lines[key] = line
            params[key] = FileValue(loader.construct_object(value_node, deep=True), f"{name}, line {line}")
        return params
    except yaml.constructor.ConstructorError as exc:
        what = "uses a YAML tag that is not allowed" if "constructor for the tag" in str(exc.problem) \
            else "is not valid YAML"
        raise UsageError(f"{name} {what}{_position(exc)}") from None
    except yaml.composer.ComposerError as exc:
        what = ("uses YAML anchors or aliases, which are not allowed" if "alias" in str(exc.problem)
                else "is not valid YAML")
        raise UsageError(f"{name} {what}{_position(exc)}") from None
    except yaml.reader.ReaderError as exc:
        raise UsageError(f"{name} holds a character YAML does not allow (character {exc.position + 1})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{name} is not valid YAML{_position(exc)}") from None
    except RecursionError:
        raise UsageError(f"{name} is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


# -- validation -----------------------------------------------------------------------------------------


def validate(info: RunbookInfo, given: dict[str, Any]) -> dict[str, Any]:
    """Coerce each given value (a -p string or a FileValue) to its declared type and bounds.

    UsageError names the parameter and the problem; a -p value is quoted (shortened), a file value never is.
    """
    checked = {}
    for name, value in given.items():
        param = info.parameters.get(name)
        if param is None:
            valid = ", ".join(info.parameters) or "none"
            if isinstance(value, FileValue):
                raise UsageError(f"{value.where}: runbook '{info.slug}' has no such parameter; valid: {valid}")
            raise UsageError(f"runbook '{info.slug}' has no parameter {show(name)}; valid: {valid}")
        checked[name] = coerce(info.slug, param, value)
    return checked


def coerce(slug: str, param: Parameter, given: Any) -> Any:
    """One value (a -p string or a FileValue) as the parameter's type, within its bounds; else UsageError."""
    from_file = isinstance(given, FileValue)
    value = given.value if from_file else given
    where = f" ({given.where})" if from_file else ""
    what = f"{slug}: parameter '{param.name}'{where}"
    expected = _TYPES.get(param.type)
    if expected is None:
        raise UsageError(f"{what} has type {show(param.type)}, which cannot be set from the command line")
    got = f", got {_kind(value)}" if from_file else f", got {show(value)}" if isinstance(value, str) else ""
    try:
        result = _convert(param.type, value)
    except (ValueError, TypeError, OverflowError):
        raise UsageError(f"{what} must be {expected}{got}") from None
    if param.type == "str":
        problem = text_problem(result, param.max_length)
        bounds = param.bounds
        if problem is None and bounds and len(result) < bounds[0]:
            problem = f"must be at least {bounds[0]:g} characters"
        if problem is None and param.choices and result not in param.choices:
            problem = f"must be one of {', '.join(param.choices)}" + ("" if from_file else f", got {show(result)}")
        if problem is None and param.timestamp and result.strip():
            try:
                parse_timestamp(result)
            except ValueError as exc:
                problem = f"{exc}" + ("" if from_file else f", got {show(result)}")
        if problem is None and param.user:
            try:
                user_reference(result)
            except ValueError as exc:
                problem = f"{exc}" + ("" if from_file else f", got {show(result)}")
        if problem:
            raise UsageError(f"{what} {problem}")
        return result
    bounds = param.bounds if param.type != "bool" else None
    if param.type == "int" and not bounds:
        bounds = (-_INT64, _INT64 - 1)       # what a bigint column or a C long holds
    if bounds and not bounds[0] <= result <= bounds[1]:
        low, high = (_number(b) for b in bounds)
        got = "" if from_file else f", got {show(str(value))}"
        raise UsageError(f"{what} must be between {low} and {high}{got}")
    return result


def _number(bound: float) -> str:
    if isinstance(bound, int):
        return str(bound)
    return str(int(bound)) if bound.is_integer() else f"{bound:g}"


def _kind(value: Any) -> str:
    """What a YAML value is, in words, without quoting it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (set, frozenset)):
        return "a set"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return "a date" if type(value).__name__ in ("date", "datetime") else "something else"


def _convert(kind: str, value: Any) -> Any:
    if isinstance(value, bool):
        if kind == "bool":
            return value
        raise TypeError(value)     # YAML reads yes/no/on/off as booleans: text must be quoted
    if not isinstance(value, (str, int, float)):
        raise TypeError(value)     # a list, a mapping, null, a date, bytes: values are scalars
    if kind == "str":
        if isinstance(value, float):
            raise TypeError(value)   # YAML 1.10 is 1.1: a version string must be quoted
        return value if isinstance(value, str) else str(value)
    text = value.strip(" ") if isinstance(value, str) else None
    if kind == "bool":
        lowered = (text if text is not None else str(value)).lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(value)
    if kind == "int":
        if text is not None:
            if not _INT.fullmatch(text):
                raise ValueError(value)
            return int(text)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind == "float":
        if text is not None and not _FLOAT.fullmatch(text):
            raise ValueError(value)
        result = float(text if text is not None else value)
        if not math.isfinite(result):
            raise ValueError(value)
        return result
    raise TypeError(value)
