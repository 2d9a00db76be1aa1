"""Compare two runs of one runbook: which findings are new, resolved, changed or the same, and the numbers they
judged side by side.

A finding is keyed by its code and its culprit, the object its evidence names (a subsystem, a deployment, a table,
a URL...: the first of CULPRIT_KEYS it holds), so two findings of one code about different objects stay apart,
and one about the same object is "the same finding" in both runs. Changed: same key, but the severity, the title
or a judged number (its measures) differs. Numbers: each finding's measures and the numbers at the top of its
evidence (as trends.py reads them), with the delta b - a. Pure: it reads two verdict.json dicts and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Evidence keys that name what a finding is about, most specific first.
CULPRIT_KEYS = ("deployment", "target", "object", "table", "subsystem", "url", "path", "endpoint", "user_id",
                "email", "probe", "backup", "pair", "kind")
_RANK = {"CRITICAL": 3, "WARNING": 2, "UNKNOWN": 1, "OK": 0}


class NotComparable(ValueError):
    """The two verdicts cannot be compared (another runbook, or not a verdict); str() is one line."""


@dataclass(frozen=True)
class Number:
    """One number of a finding in both runs (None where that run has none) and the change b - a."""

    name: str
    unit: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class Row:
    """One finding key: the finding in run a and in run b (None where absent) and their numbers side by side."""

    code: str
    culprit: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    numbers: list[Number] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)   # what differs, for a changed row: "severity", "title", a name

    @property
    def severity(self) -> str:
        """The severity shown for the row: b's where b has the finding, else a's."""
        return str((self.b or self.a or {}).get("severity", ""))


@dataclass(frozen=True)
class Comparison:
    """Two runs of one runbook, finding by finding (each group worst first)."""

    runbook: str
    a: dict[str, Any]       # {run_id, status, env, started_at, summary} of each run
    b: dict[str, Any]
    new: list[Row]
    resolved: list[Row]
    changed: list[Row]
    same: list[Row]

    @property
    def groups(self) -> list[tuple[str, list[Row]]]:
        return [("new", self.new), ("resolved", self.resolved), ("changed", self.changed), ("same", self.same)]


def compare(verdict_a: dict[str, Any], verdict_b: dict[str, Any]) -> Comparison:
    """Findings of run b against run a (a: the earlier); NotComparable (one line) when they are not verdicts of one
    runbook."""
    for name, verdict in (("a", verdict_a), ("b", verdict_b)):
        if not isinstance(verdict, dict) or not isinstance(verdict.get("findings"), list):
            raise NotComparable(f"run {name} has no verdict with findings; valid: two filed runs of one runbook")
    runbook_a, runbook_b = _runbook(verdict_a), _runbook(verdict_b)
    if runbook_a != runbook_b:
        raise NotComparable(f"runs of two runbooks ({runbook_a} and {runbook_b}) cannot be compared; valid: two runs "
                            "of one runbook")
    found_a, found_b = keyed(verdict_a["findings"]), keyed(verdict_b["findings"])
    groups: dict[str, list[Row]] = {"new": [], "resolved": [], "changed": [], "same": []}
    for key in [*found_a, *(k for k in found_b if k not in found_a)]:
        a, b = found_a.get(key), found_b.get(key)
        numbers = _numbers(a, b)
        changes = _changes(a, b) if a is not None and b is not None else []
        row = Row(key[0], key[1], a, b, numbers, changes)
        group = "new" if a is None else "resolved" if b is None else "changed" if changes else "same"
        groups[group].append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: (-_RANK.get(r.severity, 0), r.code, r.culprit))
    return Comparison(runbook_a, _about(verdict_a), _about(verdict_b), **groups)


def culprit(finding: dict[str, Any]) -> str:
    """What the finding names: the first CULPRIT_KEYS value its evidence holds, as text ("" when none)."""
    evidence = finding.get("evidence")
    if not isinstance(evidence, dict):
        return ""
    for name in CULPRIT_KEYS:
        value = evidence.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return f"{name}={value}"
    return ""


def keyed(findings: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Findings by (code, culprit); a second finding with one key gets " #2" on its culprit, so none is lost."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for finding in findings:
        if not isinstance(finding, dict):
            continue
        code, named = str(finding.get("code", "")), culprit(finding)
        key, n = (code, named), 1
        while key in out:
            n += 1
            key = (code, f"{named} #{n}".strip())
        out[key] = finding
    return out


def numbers(finding: dict[str, Any] | None) -> dict[str, tuple[float, str]]:
    """A finding's numbers by name: its measures (value, unit), then the numbers at the top of its evidence."""
    if not finding:
        return {}
    out: dict[str, tuple[float, str]] = {}
    for measure in finding.get("measures") or []:
        if isinstance(measure, dict) and (value := _number(measure.get("value"))) is not None:
            out[str(measure.get("name"))] = (value, str(measure.get("unit") or ""))
    evidence = finding.get("evidence")
    for name, raw in (evidence.items() if isinstance(evidence, dict) else []):
        if (value := _number(raw)) is not None and str(name) not in out:
            out[str(name)] = (value, "")
    return out


def judged(finding: dict[str, Any] | None) -> dict[str, float]:
    """The numbers a finding judged (its measures), by name."""
    return {str(m.get("name")): v for m in (finding or {}).get("measures") or []
            if isinstance(m, dict) and (v := _number(m.get("value"))) is not None}


def _numbers(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Number]:
    in_a, in_b = numbers(a), numbers(b)
    names = [*in_a, *(n for n in in_b if n not in in_a)]
    return [Number(n, (in_b.get(n) or in_a.get(n) or (0.0, ""))[1], _first(in_a.get(n)), _first(in_b.get(n)))
            for n in names]


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    changes = [name for name in ("severity", "title") if a.get(name) != b.get(name)]
    judged_a, judged_b = judged(a), judged(b)
    changes += [n for n in [*judged_a, *(n for n in judged_b if n not in judged_a)]
                if judged_a.get(n) != judged_b.get(n)]
    return changes


def _first(pair: tuple[float, str] | None) -> float | None:
    return pair[0] if pair else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _runbook(verdict: dict[str, Any]) -> str:
    return str(verdict.get("runbook") or (verdict.get("provenance") or {}).get("runbook") or "")


def _about(verdict: dict[str, Any]) -> dict[str, Any]:
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    return {"run_id": verdict.get("run_id") or prov.get("run_id"), "status": verdict.get("status"),
            "env": verdict.get("env") or prov.get("env"), "started_at": prov.get("started_at"),
            "summary": verdict.get("summary"), "operator": prov.get("operator"), "incident": prov.get("incident")}
