"""The thresholds a runbook notebook's markdown states are params/thresholds.yaml's, as docs/runbooks.md's finding
table's are (the last test): an engineer reading a section at 3 a.m. acts on the number it names.

Two forms are read: a named key followed by its value (`backups.max_age_hours` (24 h), `maintenance.notice_hours`,
48 h, `monitoring.min_deliveries` = 10, and a key unique across the sections named alone, `blocked_warning_s`
(**5 s**)); and the playbook's prose ("at **80 %** of the usable slots"), by one rule per sentence below. A rule
that no longer matches its notebook fails too, so a reworded sentence is re-tied to its key rather than dropped.
No sandbox: the notebooks and the YAML are read as files.
"""

from __future__ import annotations

import json
import re

import pytest

from aias_runbooks import paths
from aias_runbooks.thresholds import load_thresholds

from ..helpers import ROOT

NOTEBOOKS = ROOT / "notebooks"
THRESHOLDS = load_thresholds()
NUMBER = r"(\d+(?:\.\d+)?)"
# What follows a named key when the sentence states its value: " (24 h)", " (**2 s**", ", 48 h", ", **25 %**", " = 10".
STATED = re.compile(r"\s*(?:=|\(|,)\s*\*{0,2}" + NUMBER + r"\s*(%)?")
# The playbook's prose, one rule per sentence: (notebook, pattern, the keys of its groups in order). A key ending in
# " %" is a ratio written as a percentage; " 1-%" the complement of one (a success rate target of a failure rate).
PROSE = [
    ("full-system-check", rf"at \*\*{NUMBER} %\*\* of the usable\s+slots", ["db_connections.warning_usage %"]),
    ("full-system-check", rf"WARNING, at \*\*{NUMBER} %\*\* CRITICAL", ["db_connections.critical_usage %"]),
    ("full-system-check", rf"a mean\s+above \*\*{NUMBER} ms\*\* is a WARNING, above \*\*{NUMBER} ms\*\* CRITICAL",
     ["db_latency_ms.warning_p95", "db_latency_ms.critical_p95"]),
    ("full-system-check", rf"the 5xx rate in the {NUMBER} minutes before", ["error_rate.deploy_compare_minutes"]),
    ("full-system-check", rf"a rate over \*\*{NUMBER} %\*\*", ["error_rate.critical %"]),
    ("full-system-check", rf"5xx rate over {NUMBER} % for {NUMBER} minutes",
     ["error_rate.critical %", "error_rate.window_minutes"]),
    ("full-system-check", rf"success rate target is \*\*> {NUMBER} %\*\*, the alert \*\*> {NUMBER} %\*\* failures",
     ["webhook_failure_rate.warning 1-%", "webhook_failure_rate.critical %"]),
    ("database-connection-errors", rf"At \*\*{NUMBER} %\*\*", ["db_connections.warning_usage %"]),
    ("database-connection-errors", rf"at \*\*{NUMBER} %\*\* the application", ["db_connections.critical_usage %"]),
    ("database-connection-errors", rf"target is \*\*P95 < {NUMBER} ms\*\*", ["db_latency_ms.warning_p95"]),
    ("database-connection-errors", rf"above \*\*{NUMBER} ms\*\* \*\*CRITICAL\*\*", ["db_latency_ms.critical_p95"]),
    ("database-connection-errors", rf"Target \*\*P95 < {NUMBER} ms\*\*, alert \*\*P95 > {NUMBER} ms\*\*",
     ["db_latency_ms.warning_p95", "db_latency_ms.critical_p95"]),
    ("health-check", rf"target is \*\*P95 < {NUMBER} ms\*\*; it alerts at \*\*P95 > {NUMBER} ms\*\*",
     ["api_response_ms.warning_p95", "api_response_ms.critical_p95"]),
    ("database-health", rf"Target \*\*{NUMBER} %\*\*", ["db_health.cache_hit_pct"]),
    ("high-error-rate", rf"alerts at \*\*> {NUMBER} % for {NUMBER}\s+minutes\*\*",
     ["error_rate.critical %", "error_rate.window_minutes"]),
    ("signup-failures", rf"Below {NUMBER} % is a WARNING, below {NUMBER} % CRITICAL",
     ["signup_success_rate.warning %", "signup_success_rate.critical %"]),
    ("stripe-webhook-failures", rf"Success rate target: > {NUMBER} %; alert: failures > {NUMBER} %",
     ["webhook_failure_rate.warning 1-%", "webhook_failure_rate.critical %"]),
    ("incident-payment-issues", rf"over {NUMBER} % of payment attempts and at least {NUMBER} fail",
     ["payment_failure_rate.critical %", "payment_failure_rate.critical_min_failures"]),
    ("workflows-not-executing", rf"timed-out share over {NUMBER} % is a WARNING \(over {NUMBER} % CRITICAL\)",
     ["workflows.timeout_warning %", "workflows.timeout_critical %"]),
    ("maintenance-window", rf"customer notice is due {NUMBER} hours before", ["maintenance.notice_hours"]),
]


def markdown(slug: str) -> str:
    cells = json.loads((NOTEBOOKS / f"{slug}.ipynb").read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def unique_keys() -> dict[str, str]:
    """Each key name that one section alone has, to its `section.key`."""
    seen: dict[str, list[str]] = {}
    for section, rules in THRESHOLDS.items():
        for key in rules if isinstance(rules, dict) else ():
            seen.setdefault(key, []).append(f"{section}.{key}")
    return {key: names[0] for key, names in seen.items() if len(names) == 1}


def value_of(name: str) -> float | None:
    section, _, key = name.partition(".")
    value = THRESHOLDS.get(section, {}).get(key) if isinstance(THRESHOLDS.get(section), dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def mismatch(where: str, spec: str, stated: str, percent: bool = False) -> str | None:
    """Why `stated` is not the threshold `spec` ("section.key", optionally " %" or " 1-%"); None when it is."""
    name, _, form = spec.partition(" ")
    actual = value_of(name)
    assert actual is not None, f"{where}: {name} is not a number in params/thresholds.yaml"
    kind = form or ("%" if percent else "")
    if name.endswith("_pct") and kind == "%":
        kind = ""    # a key that is a percentage already (bloat_warning_pct: 50) is stated as 50 %, not 5000 %
    expected = {"%": actual * 100, "1-%": (1 - actual) * 100}.get(kind, actual)
    if abs(float(stated) - expected) > 1e-9:
        return f"{where} states {name} as {stated}{' %' if form or percent else ''}; thresholds.yaml has {actual}"
    return None


def keyed(slug: str) -> list[tuple[str, str, bool]]:
    """(section.key, stated value, written as a percentage) for each named key followed by a value."""
    short = unique_keys()
    found = []
    for ref in re.finditer(r"`([a-z_0-9]+(?:\.[a-z_0-9]+)?)`", text := markdown(slug)):
        name = ref.group(1) if "." in ref.group(1) else short.get(ref.group(1))
        if name is None or value_of(name) is None:
            continue
        if stated := STATED.match(text, ref.end()):
            found.append((name, stated.group(1), bool(stated.group(2))))
    return found


SLUGS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("slug", SLUGS)
def test_a_named_threshold_is_stated_with_its_value_in_thresholds_yaml(slug):
    wrong = [m for name, stated, percent in keyed(slug) if (m := mismatch(slug, name, stated, percent))]
    assert not wrong, "\n".join(wrong)


def test_the_named_thresholds_are_found():
    """The reader sees the keyed form where it is used (a change that made it find nothing would pass silently)."""
    found = {slug: keyed(slug) for slug in SLUGS}
    assert sum(map(len, found.values())) >= 15, found
    assert {name for name, *_ in found["maintenance-window"]} >= {
        "maintenance.notice_hours", "backups.max_age_hours", "api_response_ms.warning_p95", "error_rate.critical",
        "error_rate.window_minutes"}


@pytest.mark.parametrize(("slug", "pattern", "keys"), PROSE, ids=[f"{s}:{k[0]}" for s, _, k in PROSE])
def test_the_playbooks_prose_states_the_thresholds_of_thresholds_yaml(slug, pattern, keys):
    matches = list(re.finditer(pattern, markdown(slug)))
    assert matches, f"{slug}: no sentence matches {pattern!r}: re-tie the reworded sentence to {keys}"
    wrong = [m for match in matches for spec, stated in zip(keys, match.groups(), strict=True)
             if (m := mismatch(slug, spec, stated))]
    assert not wrong, "\n".join(wrong)


def test_docs_finding_table_states_the_thresholds_of_thresholds_yaml():
    """Every `section.key` = value in docs/runbooks.md's finding table is that value of params/thresholds.yaml."""
    doc = (paths.project_root() / "docs" / "runbooks.md").read_text()
    table = doc[doc.index("| runbook | code | fires when"):doc.index("Every runbook may also report")]
    stated = re.findall(r"`([a-z_0-9]+)\.([a-z_0-9]+)` = ([A-Za-z_0-9.]+)", table)
    assert len(stated) >= 20
    thresholds = load_thresholds()
    for section, key, value in stated:
        actual = thresholds[section][key]
        assert (str(actual) == value if isinstance(actual, str) else float(actual) == float(value)), \
            f"docs/runbooks.md says {section}.{key} = {value}; thresholds.yaml has {actual}"
    codes = set(re.findall(r"^\| `[a-z-]+` \| (.+?) \|", table, flags=re.M))
    named = {c for cell in codes for c in re.findall(r"`([A-Z_0-9]+)`", cell)}
    assert {"API_LATENCY_P95_HIGH", "DB_BLOCKING_LOCKS", "DB_SLOW_QUERY", "DB_PING_FAILED", "DB_VACUUM_LAG",
            "DB_CACHE_HIT_LOW"} <= named
