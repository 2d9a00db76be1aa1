"""Migrations: the local migration files of the profile's folder, what the database recorded as applied, and what
exists in the database now.

Local files are named as the Supabase CLI names them, `<version>_<name>.sql` (version: digits, a UTC timestamp);
any other file in the folder is listed as ignored, as `supabase db push` skips it. A file's statements are split
as the CLI splits them (at each `;` that ends a statement, comments kept with the statement they precede, each
trimmed, the `;` dropped), but the boundaries come from PostgreSQL's own parser (pglast, libpg_query), so a `;`
inside a string, a dollar-quoted body or a BEGIN ATOMIC body never splits one. Applied migrations are the rows of
`supabase_migrations.schema_migrations` (version, name, statements), read through the run's read-only session.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pglast import parser as pg

from ..settings import Environment

if TYPE_CHECKING:
    from ..runbook import Runbook

FILE_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")    # the CLI's own pattern: <timestamp>_<name>.sql
NO_FOLDER = "the environment profile names no migrations folder (`migrations: {folder: ...}`)"
HISTORY_LIMIT = 10_000      # rows of schema_migrations read (a project has hundreds)
CATALOGUE_LIMIT = 200_000   # objects read from the catalogue (every relation, function and type outside pg_catalog)
_POSITION = re.compile(r"(location|_start|_end|_len)$")   # offsets into the text (location, rexpr_list_start, ...)


@dataclass(frozen=True)
class Statement:
    """One statement of a migration as the CLI records it, and the line of the file where its SQL starts."""

    text: str
    line: int


@dataclass
class LocalMigration:
    """A local migration file: version and name from its file name, its text and statements; `error` when the
    parser refuses it (the line is in the message)."""

    version: str
    name: str
    path: Path
    text: str
    statements: list[Statement] = field(default_factory=list)
    error: str | None = None

    @property
    def file(self) -> str:
        return self.path.name


def folder_of(env: Environment, override: str = "") -> Path | None:
    """The migrations folder: `override` (a runbook parameter, relative to the project root) or the profile's."""
    if override.strip():
        from .. import paths
        folder = Path(override.strip()).expanduser()
        return folder if folder.is_absolute() else paths.project_root() / folder
    return env.migrations.get("folder")


def read_local(folder: Path | None) -> tuple[list[LocalMigration], list[str], str | None]:
    """(migrations in version order, ignored file names, problem): the problem says why none could be read."""
    if folder is None:
        return [], [], NO_FOLDER
    if not folder.is_dir():
        return [], [], f"the migrations folder {folder} does not exist or is not a folder"
    found, ignored = [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        match = FILE_NAME.match(path.name)
        if not match:
            if path.suffix == ".sql":
                ignored.append(path.name)
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            found.append(LocalMigration(match[1], match[2], path, "", error=f"cannot be read: {exc}"))
            continue
        migration = LocalMigration(match[1], match[2], path, text)
        try:
            migration.statements = split(text)
        except pg.ParseError as exc:
            migration.error = parse_error(text, exc)
        found.append(migration)
    found.sort(key=lambda m: (int(m.version), m.version, m.name))
    return found, ignored, None


def parse_error(text: str, exc: pg.ParseError) -> str:
    """The parser's message with the line it points at."""
    message = str(exc.args[0]) if exc.args else str(exc)
    where = exc.args[1] if len(exc.args) > 1 else None      # a byte offset into the UTF-8 text
    if isinstance(where, int) and where >= 0:
        chars = len(text.encode()[:where].decode(errors="ignore"))
        return f"line {line_of(text, chars)}: {message}"
    return message


def line_of(text: str, offset: int) -> int:
    """1-based line of a character offset."""
    return text.count("\n", 0, max(offset, 0)) + 1


class Lines:
    """1-based lines of character offsets into one text, each found by bisection (a migration of 20,000 statements
    asks for each one's line: counting newlines from the start each time would read the file 20,000 times)."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def of(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, max(offset, 0)) + 1


def split(text: str) -> list[Statement]:
    """The statements of a migration as `supabase db push` records them (pkg/parser SplitAndTrim): the text is cut
    after each `;` that ends a statement (or stands alone), each piece keeps the comments before its statement, and
    is trimmed of trailing `;` and of white space; empty pieces are dropped. ParseError when the text is not SQL."""
    spans = [(part.start, part.stop) for part in pg.split(text, with_parser=True, only_slices=True)]
    starts = [start for start, _ in spans]
    cuts, after = [], 0
    for start, end in [*spans, (len(text), len(text))]:   # a `;` between two statements (not in a comment) cuts
        cuts += [after + t.end + 1 for t in pg.scan(text[after:start]) if t.name == "ASCII_59"]
        after = end
    pieces, start, lines = [], 0, Lines(text)
    for cut in [*cuts, len(text)]:
        piece = text[start:cut].rstrip().rstrip(";").strip()
        if piece:   # its line: where its statement starts (after any comment before it), else the comment's
            i = bisect.bisect_left(starts, start)
            first = (starts[i] if i < len(starts) and starts[i] < cut
                     else start + len(text[start:cut]) - len(text[start:cut].lstrip()))
            pieces.append(Statement(piece, lines.of(first)))
        start = cut
    return pieces


def same_sql(a: str, b: str) -> bool:
    """Whether two SQL texts say the same thing to the parser: comments, white space and spelling of keywords and
    unquoted names aside. Texts the parser refuses are compared trimmed, piece by piece."""
    try:
        return _shape(a) == _shape(b)
    except pg.ParseError:
        return [s.strip() for s in a.split(";") if s.strip()] == [s.strip() for s in b.split(";") if s.strip()]


def _shape(text: str) -> Any:
    return _without_positions(json.loads(pg.parse_sql_json(text)).get("stmts", []))


def _without_positions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_positions(v) for k, v in value.items()
                if not (isinstance(v, int) and _POSITION.search(k))}
    if isinstance(value, list):
        return [_without_positions(v) for v in value]
    return value


def history(rb: Runbook) -> pd.DataFrame:
    """supabase_migrations.schema_migrations (version, name, statements), oldest first, through the run's read-only
    session; attrs["error"] when it could not be read (the runbook recorded why)."""
    rows = rb.query("migration_history", limit=HISTORY_LIMIT)
    frame = (pd.DataFrame(columns=["version", "name", "statements"]) if rows.empty
             else rows.assign(version=rows["version"].astype(str)))
    frame.attrs.update(rows.attrs)
    return frame


def catalogue(rb: Runbook, pending: list[LocalMigration]) -> Catalogue | None:
    """What exists in the target now (sql/migration_catalogue.sql), read only when a migration is `pending` (the
    dependency check is its one use, and the read is up to CATALOGUE_LIMIT rows); None then, or when it could not be
    read."""
    if not pending:
        return None
    rows = rb.query("migration_catalogue", limit=CATALOGUE_LIMIT)
    return None if rows.attrs.get("error") else Catalogue.of(rows)


@dataclass(frozen=True)
class Catalogue:
    """What exists in a database: schemas, and (schema, name) of relations, functions and types. pg_catalog's and
    information_schema's objects count as present whether listed or not."""

    schemas: frozenset[str] = frozenset()
    relations: frozenset[tuple[str, str]] = frozenset()
    functions: frozenset[tuple[str, str]] = frozenset()
    types: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, rows: pd.DataFrame) -> Catalogue:
        """From sql/migration_catalogue.sql's rows (kind, schema, name)."""
        kinds: dict[str, set] = {"schema": set(), "relation": set(), "function": set(), "type": set()}
        for kind, schema, name in rows[["kind", "schema", "name"]].itertuples(index=False) if len(rows) else []:
            kinds[kind].add(schema if kind == "schema" else (schema, name))
        return cls(frozenset(kinds["schema"]), frozenset(kinds["relation"]), frozenset(kinds["function"]),
                   frozenset(kinds["type"]))


STATE_COLUMNS = ["version", "name", "state", "file", "statements", "applied_name"]
APPLIED, NOT_COMPARED, PENDING, OUT_OF_ORDER = ("applied", "applied (not compared)", "pending",
                                                "pending, out of order")
MISSING, CHANGED, IGNORED = "missing locally", "changed since applied", "ignored"
UNKNOWN = "unknown (the history could not be read)"


def states(local: list[LocalMigration], history: pd.DataFrame, ignored: list[str] | None = None) -> pd.DataFrame:
    """One row per version, local or applied, in version order, with its state (see the module's docstring); when
    the history could not be read (attrs["error"]) every local file is `unknown`."""
    if history.attrs.get("error"):
        return pd.DataFrame([{"version": m.version, "name": m.name, "state": UNKNOWN, "file": m.file,
                              "statements": len(m.statements), "applied_name": None} for m in local],
                            columns=STATE_COLUMNS)
    applied = {str(r.version): r for r in history.itertuples(index=False)}
    newest = max((int(v) for v in applied if v.isdigit()), default=None)
    rows: list[dict[str, Any]] = []
    for m in local:
        row = applied.get(m.version)
        if row is None:
            state = OUT_OF_ORDER if newest is not None and int(m.version) < newest else PENDING
        elif not _recorded(row.statements):
            state = NOT_COMPARED
        else:
            same = ([s.text for s in m.statements] == list(row.statements)    # as the CLI recorded it: no parse
                    or same_sql(m.text, ";\n".join(row.statements)))
            state = APPLIED if same else CHANGED
        rows.append({"version": m.version, "name": m.name, "state": state, "file": m.file,
                     "statements": len(m.statements) if not m.error else None,
                     "applied_name": row.name if row is not None else None})
    known = {m.version for m in local}
    for version, row in applied.items():
        if version not in known:
            rows.append({"version": version, "name": row.name, "state": MISSING, "file": None,
                         "statements": len(row.statements) if _recorded(row.statements) else None,
                         "applied_name": row.name})
    rows.sort(key=lambda r: (int(r["version"]) if r["version"].isdigit() else 0, r["version"]))
    rows += [{"version": "", "name": name, "state": IGNORED + " (not named <version>_<name>.sql)", "file": name,
              "statements": None, "applied_name": None} for name in ignored or ()]
    return pd.DataFrame(rows, columns=STATE_COLUMNS).astype({"statements": "Int64"})


def pending_of(local: list[LocalMigration], table: pd.DataFrame) -> list[LocalMigration]:
    """The local migrations not applied yet (in or out of order), in the order they would be applied."""
    state = dict(zip(table["version"], table["state"], strict=True))
    return [m for m in local if state.get(m.version) in (PENDING, OUT_OF_ORDER)]


def _recorded(statements: Any) -> bool:
    return isinstance(statements, (list, tuple)) and len(statements) > 0
