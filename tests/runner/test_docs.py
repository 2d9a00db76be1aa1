"""The README and docs/ as a reader follows them: every relative link leads to a file (and heading) of this
repository, links leave it only for a vendor's or project's official reference, and lines fit 120
columns (tables excepted)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Official references of the vendors and projects the runbooks talk to; anything else the repository says itself.
OFFICIAL = ("stripe.com", "supabase.com", "vercel.com", "resend.com", "postgresql.org", "pgbouncer.org",
            "statuspage.io", "jupyter.org", "readthedocs.io", "python.org", "monitoring-plugins.org")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _code_free(text: str) -> str:
    """The text without its fenced code blocks (a `#` line there is a comment, not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _code_free(text))


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings (lowercase, punctuation dropped, spaces to hyphens, repeats
    numbered), and any explicit `<a id="...">` or `name="..."`."""
    seen: dict[str, int] = {}
    anchors = set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", page.read_text()))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _code_free(page.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text()))


def test_the_readme_lists_every_page_of_docs():
    linked = {(ROOT / target.split("#")[0]).resolve() for target in _links(ROOT / "README.md")}
    assert set(PAGES[1:]) <= linked, "the README's Documentation list misses a page of docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_leads_somewhere_in_the_repository_or_to_an_official_reference(page):
    for target in _links(page):
        parts = urlsplit(target)
        if parts.scheme:
            host = parts.hostname or ""
            assert parts.scheme == "https" and any(host == h or host.endswith("." + h) for h in OFFICIAL), \
                f"{page.name} links outside the repository: {target} (say it here, or link an official reference)"
            continue
        file = (page.parent / parts.path).resolve() if parts.path else page
        assert file.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert file.exists(), f"{page.name} links to a missing file: {target}"
        if parts.fragment and file.suffix == ".md":
            assert parts.fragment in _anchors(file), f"{page.name} links to a missing heading: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_path_it_names_exists(page):
    """A file or folder of the repository named by its path (`aias_runbooks/sql/`, a migration an operator is told to
    copy) is where the page says: a module that moves takes its mentions with it."""
    named = re.findall(r"(?<![\w/.])((?:aias_runbooks|tests|notebooks|params|benchmarks|docs)/[\w./-]*[\w/])(?![\w<{])",
                       page.read_text())
    missing = sorted({path for path in named if not (ROOT / path).exists()})
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_lines_fit_120_columns_except_tables(page):
    lines = enumerate(page.read_text().splitlines(), 1)
    long = [n for n, line in lines if len(line) > 120 and not line.startswith("|")]
    assert not long, f"{page.name}: lines over 120 columns: {long}"
