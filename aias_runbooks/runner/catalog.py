"""output/runs.jsonl (append-only catalogue of every run) and output/index.html built from it."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_templates = Environment(loader=PackageLoader("aias_runbooks.runner", "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


def append_run(output_root: Path, record: dict[str, Any]) -> None:
    """Append one line under an exclusive lock, so concurrent schedulers never interleave lines."""
    output_root.mkdir(parents=True, exist_ok=True)
    with open(output_root / "runs.jsonl", "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()


def read_runs(output_root: Path) -> list[dict[str, Any]]:
    path = output_root / "runs.jsonl"
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return runs


def write_index(output_root: Path) -> Path:
    """Regenerate output/index.html listing every run, newest first."""
    runs = sorted(read_runs(output_root), key=lambda r: r.get("started_at", ""), reverse=True)
    page = _templates.get_template("index.html.j2").render(runs=runs)
    index = output_root / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
