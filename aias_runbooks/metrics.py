"""A verdict's numbers for monitoring: Nagios/Icinga performance data, Prometheus textfiles and a collector.

Every finding that judges a number carries it as a Measure (findings.py): its name, value, unit and the warning
and critical lines it was judged against. From a verdict (verdict.json's content) this module writes:

- perfdata(findings): the monitoring-plugins performance data `run` prints after " | " on its summary line
  (https://www.monitoring-plugins.org/doc/guidelines.html#AEN200): 'label'=value[UOM];[warn];[crit];[min];[max].
  A label is `<finding code lowercased>_<measure name>`; a second one of the same label in a verdict (a code
  recorded twice) gets `_2`, `_3`... so labels are unique on the line. The UOM is the measure's unit when it is
  one the guidelines allow (s, ms, us, %, B, KB, MB, TB, c), else none (rows, sessions...). warn and crit are
  threshold ranges: `500` alerts above 500; a measure judged low-is-bad (a success rate) is written `95:`, alerts
  below 95. A value that could not be measured is `U`.
- write_textfile(dir, verdict, ...): `<dir>/aias_runbooks_<runbook>_<env>.prom` for node_exporter's textfile
  collector, written to a temporary file and renamed (prometheus_client.write_to_textfile): a reader never sees
  half a file, and runs of different runbooks never write the same file.
- Collector: the same series for every (runbook, environment) recorded, for `serve`'s GET /metrics.

Series, each with labels runbook and environment: aias_runbook_status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
aias_runbook_last_run_timestamp_seconds, aias_runbook_duration_seconds, and per measure (labels finding, measure,
unit) aias_runbook_measure, aias_runbook_measure_warning and aias_runbook_measure_critical.

Nothing here comes from data: runbook and environment are checked names, codes and measure names are ours;
a code or name of any other shape is left out (never quoted), so no label can carry a secret or a user's text.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UsageError
from .printable import show

UOMS = ("s", "ms", "us", "%", "B", "KB", "MB", "TB", "c")
STATUS = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
UNIT = re.compile(r"[A-Za-z%/ ]{0,16}")
PREFIX = "aias_runbook"


def _number(value: float) -> str:
    """A number as the guidelines want it: digits, '-' and '.', no exponent, no locale (12.5, 0.0004, 3)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _line(value: Any) -> float | None:
    """A measure's field as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def measures(findings: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(finding code, unique measure name, measure) for each well-formed measure of verdict.json's findings, in
    order. A name seen before for the same code gets _2, _3...: every (code, name) pair is unique."""
    seen: set[tuple[str, str]] = set()
    for finding in findings:
        code = finding.get("code")
        if not isinstance(code, str) or not CODE.fullmatch(code):
            continue
        for measure in finding.get("measures") or []:
            name, unit = measure.get("name"), measure.get("unit") or ""
            if not isinstance(name, str) or not NAME.fullmatch(name) or not isinstance(unit, str) \
                    or not UNIT.fullmatch(unit):
                continue
            unique, n = name, 1
            while (code, unique) in seen:
                n += 1
                unique = f"{name}_{n}"
            seen.add((code, unique))
            yield code, unique, measure


def _quoted(label: str) -> str:
    """A perfdata label, single-quoted when it holds a space, '=' or a quote (a quote inside doubled)."""
    if re.search(r"[\s='|]", label):
        return "'" + label.replace("'", "''") + "'"
    return label


def _range(line: float | None, low_is_bad: bool) -> str:
    if line is None:
        return ""
    return f"{_number(line)}:" if low_is_bad else _number(line)


def perfdata(findings: list[dict[str, Any]]) -> str:
    """The monitoring-plugins performance data of verdict.json's findings ('' when none judged a number)."""
    items = []
    for code, name, m in measures(findings):
        unit = m.get("unit") or ""
        uom = unit if unit in UOMS else ""
        value = _line(m.get("value"))
        low = bool(m.get("low_is_bad"))
        fields = [f"{_number(value)}{uom}" if value is not None else "U",
                  _range(_line(m.get("warning")), low), _range(_line(m.get("critical")), low),
                  *("" if _line(m.get(k)) is None else _number(_line(m.get(k))) for k in ("min", "max"))]
        while len(fields) > 1 and not fields[-1]:
            fields.pop()
        items.append(f"{_quoted(f'{code.lower()}_{name}')}={';'.join(fields)}")
    return " ".join(items)


def summary_line(summary: str, findings: list[dict[str, Any]]) -> str:
    """`run`'s first line: the verdict's summary, then " | " and its perfdata when it has any. A '|' inside the
    summary (a quoted commit message) becomes '/': monitoring reads the first '|' as the start of perfdata."""
    text = summary.replace("|", "/")
    data = perfdata(findings)
    return f"{text} | {data}" if data else text


def check_dir(folder: Path) -> Path:
    """The --metrics-dir folder, absolute; UsageError (one line, exit 3) when it is missing, not a folder or not
    writable, before anything runs."""
    where = show(str(folder))
    if not folder.exists():
        raise UsageError(f"--metrics-dir {where} does not exist; give an existing folder (node_exporter's "
                         "textfile directory)")
    if not folder.is_dir():
        raise UsageError(f"--metrics-dir {where} is not a folder; give the folder the .prom file goes in")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--metrics-dir {where} is not writable by this user; give a folder it may write in")
    return folder.absolute()


def textfile_path(metrics_dir: Path, runbook: str, env: str) -> Path:
    """`<dir>/aias_runbooks_<runbook>_<env>.prom`: one file per runbook and environment."""
    if not (SLUG.fullmatch(runbook) and SLUG.fullmatch(env)):
        raise UsageError(f"no metrics file for runbook {show(runbook)} on {show(env)}: not a runbook and "
                         "environment name")
    return metrics_dir / f"aias_runbooks_{runbook}_{env}.prom"


class Collector:
    """The last verdict recorded per (runbook, environment) as Prometheus series; thread-safe (serve records
    from the thread that ends a run while a scrape reads)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[dict[str, Any], float, float]] = {}
        self._lock = threading.Lock()

    def record(self, verdict: dict[str, Any], duration_s: float, finished_at: float) -> None:
        """Keep `verdict` (verdict.json's content) as the last of its runbook and environment, with how long the
        run took and when it finished (seconds since the epoch). A verdict without a runbook/env name is ignored."""
        runbook, env = verdict.get("runbook"), verdict.get("env")
        if isinstance(runbook, str) and isinstance(env, str) and SLUG.fullmatch(runbook) and SLUG.fullmatch(env):
            with self._lock:
                self._last[(runbook, env)] = (verdict, float(duration_s), float(finished_at))

    def collect(self) -> Iterator[Any]:
        """prometheus_client's Collector protocol: the families, one sample per recorded runbook and env."""
        from prometheus_client.core import GaugeMetricFamily
        base = ["runbook", "environment"]
        labels = [*base, "finding", "measure", "unit"]
        status = GaugeMetricFamily(f"{PREFIX}_status", "Last verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
                                   labels=base)
        last = GaugeMetricFamily(f"{PREFIX}_last_run_timestamp_seconds", "When the last run finished (Unix time)",
                                 labels=base)
        took = GaugeMetricFamily(f"{PREFIX}_duration_seconds", "How long the last run took", labels=base)
        value = GaugeMetricFamily(f"{PREFIX}_measure", "A number the last run judged, in its unit", labels=labels)
        warning = GaugeMetricFamily(f"{PREFIX}_measure_warning", "The line a measure is a WARNING past",
                                    labels=labels)
        critical = GaugeMetricFamily(f"{PREFIX}_measure_critical", "The line a measure is CRITICAL past",
                                     labels=labels)
        with self._lock:
            recorded = sorted(self._last.items())
        for (runbook, env), (verdict, duration_s, finished_at) in recorded:
            status.add_metric([runbook, env], STATUS.get(verdict.get("status"), 3))
            last.add_metric([runbook, env], finished_at)
            took.add_metric([runbook, env], duration_s)
            for code, name, m in measures(verdict.get("findings") or []):
                keys = [runbook, env, code, name, m.get("unit") or ""]
                for family, field in ((value, "value"), (warning, "warning"), (critical, "critical")):
                    if (number := _line(m.get(field))) is not None:
                        family.add_metric(keys, number)
        yield from (status, last, took, value, warning, critical)

    def registry(self) -> Any:
        """A prometheus_client CollectorRegistry holding only this collector."""
        from prometheus_client import CollectorRegistry
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition, for serve's GET /metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        return generate_latest(self.registry()), CONTENT_TYPE_LATEST


def write_textfile(metrics_dir: Path, verdict: dict[str, Any], duration_s: float, finished_at: float) -> Path:
    """Write `<dir>/aias_runbooks_<runbook>_<env>.prom` with the verdict's series, replacing the last one whole
    (a temporary file renamed onto it); the path written."""
    from prometheus_client import write_to_textfile
    path = textfile_path(Path(metrics_dir), str(verdict.get("runbook")), str(verdict.get("env")))
    collector = Collector()
    collector.record(verdict, duration_s, finished_at)
    write_to_textfile(str(path), collector.registry())
    return path
