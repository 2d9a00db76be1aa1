"""The archive's index: the newest runs on output/index.html, every run on exactly one archive page, pages that
fill up never rewritten, an archive from before pages paged once, concurrent filers never losing a run."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import pytest

from aias_runbooks.records import append_jsonl
from aias_runbooks.runner import catalog

PAGE = 20   # pages of 20 runs: the same code paths as 500, in a second


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr(catalog, "PAGE_SIZE", PAGE)


def _run(i: int, summary: str = "OK: 2 check(s) passed") -> dict:
    return {"run_id": f"run-{i:06d}", "runbook": "health-check" if i % 2 else "database-health", "env": "sandbox",
            "incident": None, "status": "WARNING" if i % 7 == 0 else "OK", "summary": summary,
            "started_at": f"2026-11-{1 + i // 1000:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
            "report_dir": f"2026-11-26/run-{i:06d}", "redactions": 0}


def _ids(page: Path) -> list[str]:
    return re.findall(r'href="(?:\.\./)?2026-11-26/(run-\d+)/report.html"', page.read_text())


def test_index_shows_the_newest_runs_and_every_run_is_on_one_page(tmp_path):
    total = 3 * PAGE + 7
    for i in range(total):
        catalog.append_run(tmp_path, _run(i))
    shown = _ids(tmp_path / "index.html")
    assert shown == [f"run-{i:06d}" for i in range(total - 1, total - 1 - PAGE, -1)], "the newest, newest first"
    pages = sorted((tmp_path / "archive").glob("runs-*.html"))
    assert [len(_ids(p)) for p in pages] == [PAGE, PAGE, PAGE, 7]
    assert sorted(i for p in pages for i in _ids(p)) == [f"run-{i:06d}" for i in range(total)]
    index = (tmp_path / "index.html").read_text()
    assert all(f'href="archive/{p.name}"' in index for p in pages) and f"{PAGE} of {total} run(s)" in index


def test_a_full_page_is_never_rewritten(tmp_path):
    for i in range(PAGE + 1):
        catalog.append_run(tmp_path, _run(i))
    full = tmp_path / "archive" / "runs-000001.html"
    before = full.stat().st_mtime_ns, full.read_text()
    for i in range(PAGE + 1, PAGE + 20):
        catalog.append_run(tmp_path, _run(i))
    assert (full.stat().st_mtime_ns, full.read_text()) == before


def test_an_archive_from_before_pages_is_paged_once(tmp_path):
    for i in range(PAGE + 10):
        append_jsonl(tmp_path / "runs.jsonl", _run(i))          # filed by an older version: no pages, no state
    catalog.append_run(tmp_path, _run(PAGE + 10))
    assert json.loads((tmp_path / ".catalog.json").read_text())["runs"] == PAGE + 11
    assert sum(len(_ids(p)) for p in (tmp_path / "archive").glob("runs-*.html")) == PAGE + 11


def test_hostile_summaries_are_text_on_every_page(tmp_path):
    catalog.append_run(tmp_path, _run(1, summary="<script>alert(1)</script><img src=x onerror=alert(2)>"))
    for page in [tmp_path / "index.html", *(tmp_path / "archive").glob("*.html")]:
        text = page.read_text()
        assert "<img src=x" not in text and text.count("<script>") == 1, page   # only the page's own filter script
        assert "&lt;script&gt;alert(1)" in text


def _file_many(root: str, start: int) -> None:
    for i in range(start, start + 30):
        catalog.append_run(Path(root), _run(i))


def test_concurrent_filers_lose_no_run(tmp_path):
    workers = [multiprocessing.Process(target=_file_many, args=(str(tmp_path), n * 1000)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert all(w.exitcode == 0 for w in workers)
    assert json.loads((tmp_path / ".catalog.json").read_text())["runs"] == 120
    assert sum(len(_ids(p)) for p in (tmp_path / "archive").glob("runs-*.html")) == 120


def test_a_run_whose_filer_was_killed_after_the_append_is_paged_by_the_next(tmp_path):
    for i in range(PAGE - 1):
        catalog.append_run(tmp_path, _run(i))
    append_jsonl(tmp_path / "runs.jsonl", _run(PAGE - 1))      # its filer died here: no page, no state written
    catalog.append_run(tmp_path, _run(PAGE))
    pages = sorted((tmp_path / "archive").glob("runs-*.html"))
    assert sorted(i for p in pages for i in _ids(p)) == [f"run-{i:06d}" for i in range(PAGE + 1)]
    assert json.loads((tmp_path / ".catalog.json").read_text())["runs"] == PAGE + 1
