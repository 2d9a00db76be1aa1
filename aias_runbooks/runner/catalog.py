"""output/runs.jsonl (append-only catalogue of every run) and output/index.html built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..records import append_jsonl, read_jsonl, write_atomic

_templates = Environment(loader=PackageLoader("aias_runbooks.runner", "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


def append_run(output_root: Path, record: dict[str, Any]) -> None:
    append_jsonl(output_root / "runs.jsonl", record)


def read_runs(output_root: Path) -> list[dict[str, Any]]:
    return read_jsonl(output_root / "runs.jsonl")


def write_index(output_root: Path) -> Path:
    """Regenerate output/index.html listing every run, newest first."""
    runs = sorted(read_runs(output_root), key=lambda r: r.get("started_at", ""), reverse=True)
    page = _templates.get_template("index.html.j2").render(runs=runs)
    index = output_root / "index.html"
    write_atomic(index, page)
    return index
