"""The report folder: output/<UTC date>/<HHMMSS>_<runbook>_<env>[_<incident>]/ with notebook, HTML and verdict."""

from __future__ import annotations

import functools
import getpass
import json
import platform
import socket
import subprocess
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nbformat

from .. import catalogue, paths
from ..findings import FINDINGS_MIME, VERDICT_MIME, Finding, Severity, Verdict, jsonable, markdown_text
from . import page

PACKAGES = ["aias-runbooks", "papermill", "nbclient", "pandas", "sqlalchemy", "psycopg", "httpx", "stripe",
            "matplotlib"]


def make_run_dir(output_root: Path, started: datetime, slug: str, env: str, incident: str | None) -> Path:
    """Create a new, never reused folder for this run (a suffix is added if the second is taken)."""
    day = output_root / started.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
    base = "_".join(filter(None, [started.strftime("%H%M%S"), slug, env, incident]))
    for n in range(1, 1000):
        folder = day / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir(mode=paths.REPORT_MODE)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run folder under {day}")


def provenance(run_id: str, slug: str, env: str, incident: str | None, operator: str | None,
               started: datetime, finished: datetime, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run_id, "runbook": slug, "env": env, "incident": incident,
        "operator": operator or getpass.getuser(), "host": socket.gethostname(),
        "started_at": started.isoformat(timespec="seconds"), "finished_at": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 2), "parameters": parameters, **installed(),
    }


@functools.cache
def installed() -> dict[str, Any]:
    """The code that ran: the git commit, Python and the packages' versions. The runner reads it once a run,
    while the kernel boots (two git commands and nine package lookups, ~30 ms), not after the last cell."""
    return {"git": _git(), "python": platform.python_version(),
            "versions": {name: _version(name) for name in PACKAGES}}


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _git() -> str:
    root = str(paths.project_root())
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + (" (uncommitted changes)" if dirty else "")) if sha else "unknown"


def displays_verdict(nb: nbformat.NotebookNode) -> bool:
    """The notebook got as far as displaying its verdict."""
    return any(VERDICT_MIME in o.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for o in cell.get("outputs", []))


def _in_order(finding: dict[str, Any], journal: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The same finding as the kernel journaled it: a saved notebook sorts its JSON keys, the journal keeps
    the order the check gave them (a ranking such as top_applications stays ranked)."""
    return next((f for f in journal or [] if f == finding), finding)


def read_verdict(nb: nbformat.NotebookNode, slug: str, env: str, run_id: str, error: str | None,
                 journal: list[dict[str, Any]] | None = None) -> Verdict:
    """The verdict the notebook displayed; after a failure, every finding recorded so far plus RUNBOOK_ERROR.

    Recorded findings come from the kernel's journal (written as each is recorded, so none is lost however
    the run ends); without one (a kernel that never started it), from the findings the notebook displayed.
    """
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
               if o.get("output_type") in ("display_data", "execute_result")]
    verdicts = [o["data"][VERDICT_MIME] for o in outputs if VERDICT_MIME in o.get("data", {})]
    if verdicts and not error:
        return Verdict(slug, env, run_id, [Finding.from_dict(_in_order(f, journal))
                                           for f in verdicts[-1]["findings"]])
    if journal is None:
        journal = [f for o in outputs for f in o.get("data", {}).get(FINDINGS_MIME, [])]
    findings = [Finding.from_dict(f) for f in journal]
    findings.append(Finding("RUNBOOK_ERROR", Severity.UNKNOWN,
                            "The runbook stopped before reaching its verdict.",
                            {"error": error or "the notebook displayed no verdict"},
                            ["Open notebook.ipynb: the failing cell shows the traceback.",
                             "Re-run interactively with `make lab` to step through it."]))
    return Verdict(slug, env, run_id, findings)


def header_cell(verdict: Verdict, prov: dict[str, Any]) -> nbformat.NotebookNode:
    """A markdown cell that puts the verdict and provenance first in the notebook and the HTML."""
    ordered = sorted(verdict.findings, key=lambda f: f.severity.rank, reverse=True)
    lines = [f"# {verdict.status.value}: {prov['runbook']} on {prov['env']}", "",
             f"**{markdown_text(verdict.summary)}**", ""]
    if ordered:
        lines += ["| severity | code | finding | explained |", "|---|---|---|---|"]
        lines += [f"| {f.severity.value} | {markdown_text(f.code)} | {markdown_text(f.title)} | {_explained(f.code)} |"
                  for f in ordered]
        lines.append("")
    top = verdict.top
    if top and top.next_steps:
        lines += [f"**Next steps ({markdown_text(top.code)}):**", ""]
        lines += [f"{i}. {markdown_text(s)}" for i, s in enumerate(top.next_steps, 1)]
        lines.append("")
    params = ", ".join(f"{k}={v!r}" for k, v in prov["parameters"].items()) or "defaults"
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    rows = [("run id", prov["run_id"]), ("incident", prov["incident"] or "–"), ("operator", prov["operator"]),
            ("host", prov["host"]), ("started (UTC)", prov["started_at"]), ("finished (UTC)", prov["finished_at"]),
            ("duration", f"{prov['duration_s']} s"), ("parameters", params), ("git", prov["git"]),
            ("python", prov["python"]), ("versions", versions)]
    lines += ["| provenance | |", "|---|---|"] + [f"| {k} | {markdown_text(str(v))} |" for k, v in rows]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata["tags"] = ["aias-report-header"]
    return cell


def _explained(code: str) -> str:
    """A link to the code's section of docs/findings.md (its path in the project), or a dash for a code the
    catalogue does not hold."""
    link = catalogue.doc_link(code)
    return f"[{link}]({link})" if link else "–"


def verdict_data(verdict: Verdict, prov: dict[str, Any]) -> dict[str, Any]:
    """verdict.json's content: the verdict, each finding with its `doc` link (docs/findings.md#<code>, null for a
    code the catalogue does not hold), the provenance; NaN is null, keys in order."""
    data = verdict.to_dict()
    data["findings"] = [f | {"doc": catalogue.doc_link(f["code"])} for f in data["findings"]]
    return jsonable(data | {"provenance": prov, "redactions": 0})


def write_report(folder: Path, nb: nbformat.NotebookNode, verdict: Verdict, prov: dict[str, Any]) -> None:
    """notebook.ipynb and report.html with the header first, and verdict.json."""
    nb.cells.insert(0, header_cell(verdict, prov))
    nbformat.write(nb, folder / "notebook.ipynb")
    title = f"{verdict.status.value}: {prov['runbook']} on {prov['env']} ({prov['started_at']})"
    (folder / "report.html").write_text(page.render(nb, title), encoding="utf-8")
    data = verdict_data(verdict, prov)
    (folder / "verdict.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")

