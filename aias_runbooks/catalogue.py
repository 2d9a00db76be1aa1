"""The runbooks and the finding codes they own: what each runbook is for, and what each code means, where it is
explained and where triage sends it. One source of truth (catalogue.yaml beside this file), read by triage's
ranking, full-system-check's owners, `aias-runbooks list`, the report's finding links and docs/findings.md.

Runbook discovery lives here too: a runbook is a notebook in the notebooks folder (paths.notebooks_dir()) whose
name is a slug. The catalogue describes the project's own runbooks; a test holds it equal to notebooks/*.ipynb and
to the codes the library records.

    python -m aias_runbooks.catalogue --write-docs   # regenerate docs/findings.md (and docs/runbooks.md's table)
    python -m aias_runbooks.catalogue --check        # exit 1 when a committed doc differs from the catalogue
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import paths

SOURCE = Path(__file__).with_name("catalogue.yaml")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
FINDINGS_DOC = "docs/findings.md"
RUNBOOKS_DOC = "docs/runbooks.md"
# docs/runbooks.md's runbook table stands between these two lines, generated.
TABLE_START, TABLE_END = "<!-- catalogue:runbooks -->", "<!-- /catalogue -->"


@dataclass(frozen=True)
class Runbook:
    """One runbook: the playbook section it follows, when to run it, its guarded action (None: it changes
    nothing), its place in triage's cause-before-symptom order (None: triage never sends there) and its codes."""

    slug: str
    playbook: str
    when: str
    action: str | None
    cause_rank: int | None
    findings: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    """One finding code: its owner runbook (None: any runbook may record it), what it means, its severity rules
    in one line, the thresholds keys it reads, its impact, what to do, and the runbook triage names for it."""

    code: str
    owner: str | None
    means: str
    judged: str
    thresholds: tuple[str, ...]
    impact: str
    do: str
    triage: str | None
    measures: tuple[str, ...] = ()   # the Measure names its findings carry (metrics.py's perfdata and series)
    unmeasured: str = ""             # why it carries none although it reads thresholds ("none: ..."), else ""

    @property
    def anchor(self) -> str:
        """Its section's anchor in docs/findings.md: the code in lower case."""
        return self.code.lower()

    @property
    def doc(self) -> str:
        """The link to its explanation, relative to the project root."""
        return f"{FINDINGS_DOC}#{self.anchor}"

    @property
    def cause_rank(self) -> int | None:
        """Triage's rank of the runbook it sends to: lower is nearer the cause (None: no runbook)."""
        return runbooks()[self.triage].cause_rank if self.triage else None


@functools.cache
def _read() -> tuple[dict[str, Runbook], dict[str, Code]]:
    data = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    order = data["cause_order"]
    codes = {code: Code(code, entry.get("owner"), entry["means"], entry.get("judged", ""),
                        tuple(entry.get("thresholds", ())), entry.get("impact", ""), entry.get("do", ""),
                        entry.get("triage"), *_measures(entry.get("measures")))
             for code, entry in data["findings"].items()}
    books = {slug: Runbook(slug, entry["playbook"], entry["when"], entry.get("action"),
                           order.index(slug) + 1 if slug in order else None,
                           tuple(c for c, info in codes.items() if info.owner == slug))
             for slug, entry in data["runbooks"].items()}
    return books, codes


def _measures(value: object) -> tuple[tuple[str, ...], str]:
    """A `measures:` entry as (names, why none): a list of names, or the text 'none: why'."""
    if isinstance(value, str):
        return (), value
    return tuple(value or ()), ""


def runbooks() -> dict[str, Runbook]:
    """The project's runbooks by slug, in the catalogue's order."""
    return _read()[0]


def codes() -> dict[str, Code]:
    """Every finding code the library records, with what the catalogue says of it."""
    return _read()[1]


def finding(code: str) -> Code | None:
    """What the catalogue says of `code`; None for a code it does not hold (a test notebook's own)."""
    return codes().get(code)


def doc_link(code: str) -> str | None:
    """docs/findings.md#<code> for a catalogued code, else None."""
    info = finding(code)
    return info.doc if info else None


def cause_order() -> tuple[str, ...]:
    """Triage's runbooks, cause before symptom: the database under everything, then what users see."""
    return tuple(sorted((r.slug for r in runbooks().values() if r.cause_rank), key=lambda s: runbooks()[s].cause_rank))


def next_runbooks() -> dict[str, str]:
    """Code -> the runbook triage names as "run next" for it (codes without one are absent)."""
    return {c.code: c.triage for c in codes().values() if c.triage}


def slugs() -> list[str]:
    """The runbooks present: the notebooks in the notebooks folder whose names are slugs, sorted."""
    return sorted(p.stem for p in paths.notebooks_dir().glob("*.ipynb") if SLUG.fullmatch(p.stem))


# -- the documents generated from it ---------------------------------------------------------------------------


def findings_markdown() -> str:
    """docs/findings.md: one section per code with an explicit anchor, grouped by owner runbook."""
    lines = ["# Findings", "",
             "<!-- Generated from aias_runbooks/catalogue.yaml by `make docs`; edit the catalogue, not this file. -->",
             "", "Every finding code a runbook can report: what it means, what it costs, how it is judged, the",
             "`params/thresholds.yaml` keys it reads (a profile may override them), the numbers it carries typed",
             "(`measures`: the performance data after `run`'s summary and the Prometheus series, each",
             "`<code lowercased>_<measure>`) and what to do. Each report's findings table and `verdict.json` link",
             "here. Exit codes: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3.", ""]
    owners = [*runbooks(), None]
    lines += ["| owner runbook | codes |", "|---|---|"]
    lines += [f"| {_owner(slug)} | {', '.join(f'[`{c}`](#{codes()[c].anchor})' for c in _owned(slug))} |"
              for slug in owners if _owned(slug)]
    for slug in owners:
        for code in _owned(slug):
            lines += ["", *_section(codes()[code])]
    return "\n".join(lines) + "\n"


def _owned(slug: str | None) -> list[str]:
    return [c.code for c in codes().values() if c.owner == slug]


def _owner(slug: str | None) -> str:
    return f"`{slug}`" if slug else "any runbook"


def _section(info: Code) -> list[str]:
    """One code's section: its anchor, its heading and a table (a table's rows may be as long as they need)."""
    rows = [("means", info.means), ("impact", info.impact), ("judged", info.judged),
            ("thresholds", ", ".join(f"`{k}`" for k in info.thresholds)),
            ("measures", ", ".join(f"`{m}`" for m in info.measures) or info.unmeasured), ("what to do", info.do),
            ("owner", _owner(info.owner)), ("triage sends it to", f"`{info.triage}`" if info.triage else "")]
    return [f'<a id="{info.anchor}"></a>', "", f"## {info.code}", "", "| | |", "|---|---|",
            *[f"| {name} | {text.replace('|', chr(92) + '|')} |" for name, text in rows if text]]


def runbooks_table() -> str:
    """docs/runbooks.md's table of runbooks (between TABLE_START and TABLE_END)."""
    lines = ["| runbook | playbook section | when to run | guarded action | findings |", "|---|---|---|---|---|"]
    for r in runbooks().values():
        owned = ", ".join(f"[`{c}`](findings.md#{codes()[c].anchor})" for c in r.findings)
        lines.append(f"| `{r.slug}` | {r.playbook} | {r.when} | {r.action or '-'} | {owned or '-'} |")
    return "\n".join(lines)


def documents(root: Path) -> dict[Path, str]:
    """Each generated document's path under `root` and the text the catalogue makes of it: docs/findings.md, and
    docs/runbooks.md with its table replaced when that file holds the markers (left out when it does not)."""
    made = {root / FINDINGS_DOC: findings_markdown()}
    runbooks_doc = root / RUNBOOKS_DOC
    text = runbooks_doc.read_text(encoding="utf-8") if runbooks_doc.is_file() else ""
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        made[runbooks_doc] = f"{head}{TABLE_START}\n{runbooks_table()}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}"
    return made


def stale(root: Path) -> list[Path]:
    """The generated documents whose committed text differs from what the catalogue makes (or that are missing)."""
    return [path for path, text in documents(root).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aias_runbooks.catalogue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-docs", action="store_true", help="regenerate the documents made from the catalogue")
    parser.add_argument("--check", action="store_true", help="exit 1 when a document differs from the catalogue")
    args = parser.parse_args(argv)
    root = paths.project_root()
    if args.write_docs:
        for path, text in documents(root).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(root)}")
    if args.check and (behind := stale(root)):
        print(f"out of date (run `make docs`): {', '.join(str(p.relative_to(root)) for p in behind)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
