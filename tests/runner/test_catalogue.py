"""The catalogue (aias_runbooks/catalogue.yaml) against the code: every finding code the library records is in it,
every code in it is recorded somewhere, each runbook it names has a notebook, and the documents made from it are
the committed ones. No sandbox needed."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from aias_runbooks import catalogue, paths
from aias_runbooks.thresholds import load_thresholds

ROOT = paths.project_root()
CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Upper-case literals in the library that are not finding codes: a PostgreSQL token name (sources/migrations.py)
# and a libpq variable (sources/backups.py). AIAS_* literals are our environment variables.
NOT_CODES = {"ASCII_59", "PGCONNECT_TIMEOUT", "O_NOFOLLOW"}


def _sources() -> list[tuple[str, str]]:
    """(where, Python source) of the library (not the sandbox: it imitates the platform and records no finding)
    and of each notebook's code cells (lines of IPython magics dropped)."""
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
             for p in sorted((ROOT / "aias_runbooks").rglob("*.py")) if "sandbox" not in p.parts]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        found.append((path.name, "\n".join(line for line in code.splitlines()
                                            if not line.lstrip().startswith(("%", "!")))))
    return found


def recorded_codes() -> tuple[dict[str, set[str]], set[str]]:
    """The finding codes the code can record, and where: every string literal that is a whole UPPER_SNAKE name
    (Finding("X", ...), `code = "X" if ... else "Y"`, a Metric's code, a table of refusals: codes reach Finding
    through variables and tables, so the scan reads every literal, not only Finding's first argument), minus
    environment variables (AIAS_*) and NOT_CODES. And the f-string templates that build a code from a prefix
    (checks/latency.py: f"{prefix}_LATENCY_OK"), as regular expressions."""
    codes: dict[str, set[str]] = {}
    templates: set[str] = set()
    for where, source in _sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                codes.setdefault(node.value, set()).add(where)
            elif isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[A-Z][A-Z0-9_]*" for v in node.values]
                pattern = "".join(parts)
                if any(isinstance(v, ast.FormattedValue) for v in node.values) and re.search(r"_[A-Z]{2,}", pattern) \
                        and re.fullmatch(r"[A-Z0-9_\\\[\]\-*]+", pattern):
                    templates.add(pattern)
    return {c: w for c, w in codes.items() if not c.startswith("AIAS_") and c not in NOT_CODES}, templates


def test_every_recorded_code_is_in_the_catalogue():
    codes, _ = recorded_codes()
    missing = {code: sorted(where) for code, where in codes.items() if catalogue.finding(code) is None}
    assert not missing, f"add these codes to aias_runbooks/catalogue.yaml (or to NOT_CODES if not a code): {missing}"


def test_every_catalogued_code_is_recorded_somewhere():
    codes, templates = recorded_codes()
    built = {c for c in catalogue.codes() for t in templates if re.fullmatch(t, c)}
    assert all(any(re.fullmatch(t, c) for c in catalogue.codes()) for t in templates), templates
    nowhere = sorted(set(catalogue.codes()) - set(codes) - built)
    assert not nowhere, f"the catalogue holds codes nothing records: {nowhere}"


def test_the_catalogue_names_each_runbook_once_and_only_real_ones():
    assert list(catalogue.runbooks()) and set(catalogue.runbooks()) == set(catalogue.slugs())
    for code in catalogue.codes().values():
        assert code.owner is None or code.owner in catalogue.runbooks(), code
        assert code.triage is None or code.triage in catalogue.cause_order(), code
        assert code.means and code.judged, code


def test_each_thresholds_key_it_names_exists():
    thresholds = load_thresholds()
    for code in catalogue.codes().values():
        for key in code.thresholds:
            section, _, name = key.partition(".")
            assert section in thresholds and (not name or name in thresholds[section]), (code.code, key)


def test_a_code_links_to_its_own_section():
    info = catalogue.finding("DB_CONNECTION_LEAK")
    assert info.owner == "database-connection-errors" and info.doc == "docs/findings.md#db_connection_leak"
    assert '<a id="db_connection_leak"></a>\n\n## DB_CONNECTION_LEAK' in catalogue.findings_markdown()
    assert catalogue.finding("NOT_A_CODE") is None and catalogue.doc_link("NOT_A_CODE") is None


def test_the_generated_documents_are_the_committed_ones():
    """docs/findings.md (and docs/runbooks.md's table, between its markers) as the catalogue makes them."""
    assert not catalogue.stale(ROOT), "run `make docs` and commit the result"
    assert Path(ROOT / catalogue.FINDINGS_DOC).is_file()


def test_the_report_and_verdict_json_link_each_finding_to_its_explanation(tmp_path):
    """write_report, as the runner calls it: the findings table links each catalogued code to its section, and
    verdict.json carries the same link (`doc`), null for a code the catalogue does not hold."""
    import nbformat

    from aias_runbooks.findings import Finding, Severity, Verdict
    from aias_runbooks.runner.report import write_report

    verdict = Verdict("database-connection-errors", "sandbox", "run-1", [
        Finding("DB_CONNECTION_LEAK", Severity.WARNING, "8 sessions idle in transaction"),
        Finding("A_TEST_CODE", Severity.OK, "not catalogued")])
    prov = {"runbook": "database-connection-errors", "env": "sandbox", "run_id": "run-1", "incident": None,
            "operator": "me", "host": "h", "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:00:01+00:00", "duration_s": 1.0, "parameters": {}, "git": "x",
            "python": "3", "versions": {}}
    write_report(tmp_path, nbformat.v4.new_notebook(), verdict, prov)
    data = json.loads((tmp_path / "verdict.json").read_text())
    assert [f["doc"] for f in data["findings"]] == ["docs/findings.md#db_connection_leak", None]
    html = (tmp_path / "report.html").read_text()
    assert 'href="docs/findings.md#db_connection_leak"' in html


# runbooks that record other runbooks' codes as their own findings: full-system-check's and incident-system-down's
# subsystems (API_DOWN, DB_UNREACHABLE, ...), triage's signals
AGGREGATORS = {"full-system-check", "incident-system-down", "triage"}


def test_every_scenario_expects_codes_the_catalogue_holds_and_their_owners_record():
    """A scenario's expectation ({runbook: {code: severity}}) names catalogued codes, each recorded by the runbook it
    is expected of: its owner, or a runbook that reports another runbook's codes (full-system-check, triage) or a
    code any runbook may record."""
    from aias_runbooks.sandbox.scenarios import SCENARIOS

    wrong = []
    for scenario in SCENARIOS.values():
        for runbook, codes in scenario.expected.items():
            assert runbook in catalogue.runbooks(), f"{scenario.name}: no runbook {runbook}"
            for code in codes:
                info = catalogue.finding(code)
                if info is None or (info.owner not in (runbook, None) and runbook not in AGGREGATORS):
                    wrong.append((scenario.name, runbook, code, info.owner if info else "not catalogued"))
    assert not wrong, wrong
