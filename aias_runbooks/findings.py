"""Finding, Severity and Verdict: what a runbook concluded, for people (HTML) and machines (JSON)."""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

VERDICT_MIME = "application/vnd.aias-runbooks.verdict+json"
FINDINGS_MIME = "application/vnd.aias-runbooks.findings+json"


class Severity(str, Enum):
    """Monitoring-plugin states; the exit code of `aias-runbooks run` is the verdict's state."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        return {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[self.value]

    @property
    def rank(self) -> int:
        """Worst-first order: a known problem outranks a blind spot, which outranks OK."""
        return {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}[self.value]


_COLOURS = {"OK": "#1a7f37", "WARNING": "#9a6700", "CRITICAL": "#cf222e", "UNKNOWN": "#57606a"}


def html_table(rows: dict[str, Any], style: str = "") -> str:
    """A two-column key/value table, escaped; empty string when there are no rows."""
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table style='{style}'>{body}</table>" if body else ""


# What can start a markdown construct inside a line: escapes, code, emphasis, links and images, HTML and
# entities, table pipes, strikethrough, and $ (Jupyter renders $...$ as LaTeX).
_MARKDOWN = re.compile(r"([\\`*_\[\]()<>!&|~$])")


def markdown_text(text: str) -> str:
    """Untrusted text (an application_name, an operator) as literal text inside a markdown line or table cell:
    each character that could start a link, image, tag or emphasis is backslash-escaped; newlines become spaces."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def _jsonable(value: Any) -> Any:
    """Plain JSON data with its order kept: a missing value (None, float NaN/inf, pandas NA/NaT) is None (null),
    numpy and pandas values become Python ones, Decimals numbers, anything else its text.

    The result always passes json.dumps(..., allow_nan=False): NaN is not JSON.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "tolist"):       # numpy scalars and arrays, pandas Series and Index
        return _jsonable(value.tolist())
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def _json_key(key: Any) -> str:
    """A mapping key as json.dumps would spell it (None is "null", True "true"), else its text."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def jsonable(value: Any) -> Any:
    """Public name of _jsonable: what verdict.json and the JSON-lines records are made of."""
    return _jsonable(value)


def _number(value: Any) -> float | None:
    """A measure's number as a float; None for a missing or non-finite one (NaN, inf, pandas NA)."""
    value = _jsonable(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Measure:
    """One number a finding judged, typed: what it is, its value and unit, and the lines it was judged against
    (warning, critical; None where the rule has none), with its range when it has one (a share: 0 to 100 %).
    low_is_bad: the value is judged bad below its lines (a success rate), not above them.

    This is what monitoring reads: Nagios/Icinga performance data after `run`'s summary and the Prometheus
    series (metrics.py). The name is ours (snake_case), never data."""

    name: str
    value: float | None
    unit: str = ""
    warning: float | None = None
    critical: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    low_is_bad: bool = False

    def __post_init__(self) -> None:
        for attr in ("value", "warning", "critical", "minimum", "maximum"):
            setattr(self, attr, _number(getattr(self, attr)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "warning": self.warning,
                "critical": self.critical, "min": self.minimum, "max": self.maximum} \
            | ({"low_is_bad": True} if self.low_is_bad else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measure:
        return cls(data["name"], data.get("value"), data.get("unit", ""), data.get("warning"),
                   data.get("critical"), data.get("min"), data.get("max"), bool(data.get("low_is_bad")))


@dataclass
class Finding:
    """One conclusion: a stable code naming the cause, how bad, the evidence and what to do next, and the
    numbers it judged (measures) when it judged any."""

    code: str
    severity: Severity
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    next_steps: list[str] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.severity = Severity(self.severity)

    def to_dict(self) -> dict[str, Any]:
        data = {"code": self.code, "severity": self.severity.value, "title": self.title,
                "evidence": _jsonable(self.evidence), "next_steps": list(self.next_steps)}
        if self.measures:
            data["measures"] = [m.to_dict() for m in self.measures]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(data["code"], Severity(data["severity"]), data["title"],
                   data.get("evidence", {}), data.get("next_steps", []),
                   [Measure.from_dict(m) for m in data.get("measures") or []])

    def measured(self, *measures: Measure) -> Finding:
        """This finding with `measures` added, returned: a check can end `return Finding(...).measured(...)`."""
        self.measures.extend(measures)
        return self

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.severity.value]
        steps = "".join(f"<li>{html.escape(s)}</li>" for s in self.next_steps)
        return (f"<div style='border-left:4px solid {colour};padding:4px 10px;margin:6px 0'>"
                f"<b style='color:{colour}'>{self.severity.value}</b> <code>{html.escape(self.code)}</code> "
                f"{html.escape(self.title)}"
                + html_table(self.evidence, "margin:4px 0")
                + (f"<div>Next steps:<ol style='margin:2px 0'>{steps}</ol></div>" if steps else "")
                + "</div>")

    def __str__(self) -> str:
        return f"{self.severity.value} {self.code}: {self.title}"


def worst(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


@dataclass
class Verdict:
    """The runbook's overall state: its worst finding, with every finding behind it."""

    runbook: str
    env: str
    run_id: str
    findings: list[Finding]

    @property
    def status(self) -> Severity:
        return worst(self.findings)

    @property
    def top(self) -> Finding | None:
        ranked = sorted(self.findings, key=lambda f: f.severity.rank, reverse=True)
        return ranked[0] if ranked and ranked[0].severity is not Severity.OK else None

    @property
    def summary(self) -> str:
        """The verdict as one line (the first line `run` prints, which run-all and schedules read back): the
        status and the top finding's code and title."""
        problems = [f for f in self.findings if f.severity is not Severity.OK]
        if not problems:
            codes = ", ".join(f.code for f in self.findings)
            return f"OK: {len(self.findings)} check(s) passed ({codes})" if codes else "OK: no checks ran"
        top = self.top
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        title = " ".join(top.title.split())   # one line, whatever it quotes (a commit message has several)
        return f"{self.status.value}: {top.code} - {title}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"runbook": self.runbook, "env": self.env, "run_id": self.run_id,
                "status": self.status.value, "exit_code": self.status.exit_code, "summary": self.summary,
                "findings": [f.to_dict() for f in self.findings]}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        colour = _COLOURS[self.status.value]
        ordered = sorted(self.findings, key=lambda f: f.severity.rank, reverse=True)
        body = "".join(f._repr_html_() for f in ordered)
        head = (f"<h3 style='color:{colour}'>Verdict: {self.status.value}</h3>"
                f"<p>{html.escape(self.summary)}</p>")
        return {VERDICT_MIME: self.to_dict(), "text/html": head + body,
                "text/plain": "\n".join([f"Verdict: {self.summary}", *map(str, ordered)])}
