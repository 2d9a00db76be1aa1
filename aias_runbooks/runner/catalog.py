"""output/runs.jsonl (append-only catalogue of every run), output/index.html (the newest runs, with filters) and
output/archive/runs-NNNNNN.html (every run, PAGE_SIZE a page, oldest page first).

Filing a run costs the same whatever the history: it appends one line, reads back only the tail of runs.jsonl
(the index's runs, the current page's), rewrites the index and the one page that changed. A full page is never
rewritten. output/.catalog.json holds each page's byte offset in runs.jsonl and its date range: the current page
is whatever follows its offset, so a filer killed between the append and the rest loses nothing (the next filer
pages that run too), and neither does one whose disk filled up after the append (NotPaged: the run is filed).
An archive without it (made before pages existed) is paged once, on the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, Template, select_autoescape

from ..records import append_jsonl, read_jsonl, write_atomic

PAGE_SIZE = 500   # runs per archive page, and how many the index shows
_templates = Environment(loader=PackageLoader("aias_runbooks.runner", "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


class NotPaged(Exception):
    """The run's line is in runs.jsonl (it is filed), but its archive page or the index could not be rewritten (a
    full disk); the next run filed pages it with its own. The message is the reason."""


def append_run(output_root: Path, record: dict[str, Any], once: bool = False) -> Path:
    """File one run: append it to runs.jsonl, then rewrite the index and the archive page it lands on.

    OSError when the line cannot be appended (nothing is: see append_jsonl); NotPaged when the pages cannot be
    rewritten after it. With `once` a run whose id runs.jsonl already holds is not appended again: for a filing
    resumed after it was cut short, the one caller that may repeat a run (the search reads the whole catalogue).
    """
    with _locked(output_root):
        if not (once and filed(output_root, record["run_id"])):
            append_jsonl(output_root / "runs.jsonl", record)
        try:
            return _page_tail(output_root)
        except OSError as exc:
            raise NotPaged(exc.strerror or str(exc)) from exc


def filed(output_root: Path, run_id: str) -> bool:
    """Whether runs.jsonl holds the run (a line with its id), reading all of it."""
    path = output_root / "runs.jsonl"
    if not path.is_file():
        return False
    quoted = json.dumps(run_id)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if quoted in line:   # parsed only when it may be the one
                with contextlib.suppress(ValueError):
                    run = json.loads(line)
                    if isinstance(run, dict) and run.get("run_id") == run_id:
                        return True
    return False


def _page_tail(output_root: Path) -> Path:
    """Under the lock, after an append: the current page (and any after it) and the index, from runs.jsonl."""
    state = _state(output_root) or {"pages": []}   # none yet: the whole archive is paged, once
    current = max(len(state["pages"]) - 1, 0)
    start = state["pages"][current]["offset"] if state["pages"] else 0
    _write_pages(output_root, state, current, _runs_from(output_root / "runs.jsonl", start))
    state["runs"] = _total(state)   # for readers of the file; the pages are what counts
    write_atomic(output_root / ".catalog.json", json.dumps(state))
    return write_index(output_root, state)


def rebuild(output_root: Path) -> Path:
    """Page the whole of runs.jsonl again and rewrite the index, after runs.jsonl itself was rewritten (`reports
    prune`): every page, its offsets and the count follow the new file, and pages past the new last one are removed.

    The caller holds `locked(output_root)`, across its rewrite and this, so no run is filed in between.
    """
    state: dict[str, Any] = {"pages": []}
    path = output_root / "runs.jsonl"
    _write_pages(output_root, state, 0, _runs_from(path, 0) if path.is_file() else [])
    current = {_page_name(n) for n in range(len(state["pages"]))}
    for stale in (output_root / "archive").glob("runs-*.html"):
        if stale.name not in current:
            stale.unlink(missing_ok=True)
    state["runs"] = _total(state)
    write_atomic(output_root / ".catalog.json", json.dumps(state))
    return write_index(output_root, state)


def read_runs(output_root: Path) -> list[dict[str, Any]]:
    """Every run ever filed, oldest first (reads the whole catalogue: for reports and tools, not per run)."""
    return read_jsonl(output_root / "runs.jsonl")


def tail_runs(output_root: Path, count: int) -> list[dict[str, Any]]:
    """The last `count` runs filed, oldest first, reading only the end of runs.jsonl."""
    path = output_root / "runs.jsonl"
    if count <= 0 or not path.is_file():
        return []
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        start, chunk = end, b""
        while start > 0 and chunk.count(b"\n") <= count:
            start = max(0, start - 65536)
            fh.seek(start)
            chunk = fh.read(end - start)
    lines = chunk.splitlines()[-count:] if start == 0 else chunk.splitlines()[1:][-count:]
    runs = []
    for line in lines:
        with contextlib.suppress(ValueError):    # a torn or corrupt line is skipped, as read_jsonl does
            runs.append(json.loads(line))
    return runs


def index_template() -> Template:
    """The index page's template, compiled once per process (~15 ms; the runner compiles it while the kernel
    boots)."""
    return _templates.get_template("index.html.j2")


def write_index(output_root: Path, state: dict[str, Any] | None = None) -> Path:
    """output/index.html: the newest PAGE_SIZE runs, newest first, and the archive's pages."""
    state = state or _state(output_root) or {"pages": []}
    runs = sorted(tail_runs(output_root, PAGE_SIZE), key=lambda r: r.get("started_at", ""), reverse=True)
    pages = [{"href": f"archive/{_page_name(n)}", "n": n + 1} | page for n, page in enumerate(state["pages"])]
    index = output_root / "index.html"
    write_atomic(index, index_template().render(
        runs=runs, total=_total(state), pages=list(reversed(pages)), base="", title="aias-runbooks reports"))
    return index


def _runs_from(path: Path, offset: int) -> list[tuple[int, dict[str, Any]]]:
    """(byte offset, run) of each line of runs.jsonl from `offset` on; a torn or corrupt line is skipped."""
    found = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            with contextlib.suppress(ValueError):
                found.append((offset, json.loads(line)))
            offset += len(line)
    return found


def _write_pages(output_root: Path, state: dict[str, Any], first: int, runs: list[tuple[int, dict]]) -> None:
    """Pages first.. from `runs` (those pages' runs with their offsets, oldest first), recorded in state."""
    folder = output_root / "archive"
    folder.mkdir(exist_ok=True)
    del state["pages"][first:]
    for start in range(0, len(runs), PAGE_SIZE):
        chunk = [run for _, run in runs[start:start + PAGE_SIZE]]
        page = {"offset": runs[start][0], "first": chunk[0].get("started_at", ""),
                "last": chunk[-1].get("started_at", ""), "runs": len(chunk)}
        state["pages"].append(page)
        n = len(state["pages"]) - 1
        title = f"aias-runbooks reports, page {n + 1}: {page['first'][:10]} to {page['last'][:10]}"
        write_atomic(folder / _page_name(n), index_template().render(
            runs=list(reversed(chunk)), total=_total(state), pages=[], base="../", title=title))


def _total(state: dict[str, Any]) -> int:
    return sum(page["runs"] for page in state["pages"])


def _page_name(n: int) -> str:
    return f"runs-{n + 1:06d}.html"


def _state(output_root: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((output_root / ".catalog.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if all("offset" in page for page in state.get("pages", [])) else None


def locked(output_root: Path) -> contextlib.AbstractContextManager[None]:
    """The catalogue's lock, for a tool that rewrites runs.jsonl (`reports prune`): no run is filed meanwhile.
    Not re-entrant: inside it call `rebuild`, never `append_run`."""
    return _locked(output_root)


@contextlib.contextmanager
def _locked(output_root: Path) -> Iterator[None]:
    """One filer at a time (scheduled runs finish together): the count and the pages stay consistent."""
    output_root.mkdir(parents=True, exist_ok=True)
    with open(output_root / ".catalog.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
