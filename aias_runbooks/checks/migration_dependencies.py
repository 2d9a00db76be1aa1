"""Will each migration find what it uses? A pure analysis of migration texts with PostgreSQL's own parser (pglast).

Migrations are read in version order, statement by statement, keeping a model of what exists: it starts as the
database's catalogue (sources.migrations.Catalogue: what is there now) and each statement adds what it creates
(schemas, tables, views, sequences, indexes, functions, types; serial and identity columns' sequences) and removes
what it drops, renames or moves. Every object a statement uses must exist in the model at that point:
- relations named in FROM/JOIN, INSERT/UPDATE/DELETE, REFERENCES of a foreign key, ALTER TABLE, CREATE INDEX ON,
  CREATE POLICY/TRIGGER ON, GRANT ON, COMMENT ON, RENAME, DROP (without IF EXISTS), LIKE, INHERITS, PARTITION OF;
- schemas of what a statement creates, of GRANT ... ON SCHEMA / ALL TABLES IN SCHEMA and ALTER DEFAULT PRIVILEGES;
- functions called (in defaults, checks, policies, indexes, views, SQL function bodies) and trigger functions, when
  the name is schema-qualified or user-defined (a function of that name was created by a migration or exists outside
  pg_catalog): an unqualified built-in such as now() or gen_random_uuid() is the server's own;
- types likewise: qualified, or unqualified and user-defined (an enum, a domain, a composite type, a table's row type).
Unqualified names resolve along pg_catalog then the search path, Supabase's `public, extensions` unless a migration
sets search_path. pg_catalog and information_schema always exist; an extension created by a migration (CREATE
EXTENSION) may provide any function or type in its schema, and any object of a schema the model does not know (some
extensions create a schema of their own: pg_cron's cron).

Not followed, so never reported: the body of a DO block or of a PL/pgSQL function (the server checks those when
they run, not when they are created), dynamic SQL, and objects whose names are only strings (nextval('seq')). The
body of a LANGUAGE sql function is followed unless a migration turned check_function_bodies off, as the server does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast import parser as pg
from pglast.enums import ConstrType, GrantTargetType, ObjectType, VariableSetKind
from pglast.keywords import RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

from ..sources.migrations import FILE_NAME, Catalogue, Lines, parse_error

BUILTIN_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
DEFAULT_PATH = ("public", "extensions")     # Supabase's search_path for the roles migrations run as
RELATION_KINDS = {ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_INDEX,
                  ObjectType.OBJECT_SEQUENCE, ObjectType.OBJECT_FOREIGN_TABLE}
FUNCTION_KINDS = {ObjectType.OBJECT_FUNCTION, ObjectType.OBJECT_PROCEDURE, ObjectType.OBJECT_ROUTINE,
                  ObjectType.OBJECT_AGGREGATE}
TYPE_KINDS = {ObjectType.OBJECT_TYPE, ObjectType.OBJECT_DOMAIN}
ON_RELATION_KINDS = {ObjectType.OBJECT_POLICY, ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_RULE,
                     ObjectType.OBJECT_TABCONSTRAINT}
# pg_catalog's trigger functions (a trigger's function is checked even unqualified: it is nearly always the app's)
BUILTIN_TRIGGER_FUNCTIONS = {"suppress_redundant_updates_trigger", "tsvector_update_trigger",
                             "tsvector_update_trigger_column"}
SERIAL_TYPES = {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"}
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_KEYWORDS = set(RESERVED_KEYWORDS) | set(TYPE_FUNC_NAME_KEYWORDS)

# Where a relation is named, in words: (statement or node class, field) -> how the statement uses it.
USES = {("Constraint", "pktable"): "REFERENCES", ("AlterTableStmt", "relation"): "ALTER TABLE",
        ("IndexStmt", "relation"): "CREATE INDEX ON", ("CreatePolicyStmt", "table"): "CREATE POLICY ON",
        ("AlterPolicyStmt", "table"): "ALTER POLICY ON", ("CreateTrigStmt", "relation"): "CREATE TRIGGER ON",
        ("GrantStmt", "objects"): "GRANT ON", ("InsertStmt", "relation"): "INSERT INTO",
        ("UpdateStmt", "relation"): "UPDATE", ("DeleteStmt", "relation"): "DELETE FROM",
        ("MergeStmt", "relation"): "MERGE INTO", ("TruncateStmt", "relations"): "TRUNCATE",
        ("TableLikeClause", "relation"): "LIKE", ("CreateStmt", "inhRelations"): "INHERITS / PARTITION OF",
        ("RuleStmt", "relation"): "CREATE RULE ON", ("LockStmt", "relations"): "LOCK",
        ("CopyStmt", "relation"): "COPY", ("VacuumRelation", "relation"): "VACUUM / ANALYZE"}


@dataclass(frozen=True)
class Problem:
    """A migration uses an object that neither the database nor an earlier statement provides (kind table,
    function, type or schema), or its text does not parse (kind syntax: `missing` holds the parser's message)."""

    version: str
    file: str
    statement: int        # 1-based, among the file's statements
    statement_line: int   # the line of the file where that statement starts
    line: int             # the line of the file where the object is named
    kind: str
    missing: str          # the object as SQL would spell it (quoted where it must be)
    used_in: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "file": self.file, "statement": self.statement,
                "statement_line": self.statement_line, "line": self.line, "kind": self.kind,
                "missing": self.missing, "used_in": self.used_in}


def quote(name: str) -> str:
    """An identifier as SQL spells it: as is when plain lower case and not a keyword, else in double quotes."""
    return name if _PLAIN.fullmatch(name) and name not in _KEYWORDS else '"' + name.replace('"', '""') + '"'


def qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


@dataclass
class _Model:
    """What exists at the current point of the sequence."""

    schemas: set[str]
    relations: set[tuple[str, str]]
    functions: set[tuple[str, str]]
    types: set[tuple[str, str]]
    provided: set[str] = field(default_factory=set)        # schemas an extension created objects in
    extension_schemas: bool = False    # an extension was created: a schema unknown here may be one of its own (cron)
    user_functions: set[str] = field(default_factory=set)  # unqualified names that are not the server's own
    user_types: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, existing: Catalogue) -> _Model:
        model = cls(set(existing.schemas) | BUILTIN_SCHEMAS, set(existing.relations), set(existing.functions),
                    set(existing.types))
        model.user_functions = {n for s, n in existing.functions if s not in BUILTIN_SCHEMAS}
        model.user_types = {n for s, n in existing.types if s not in BUILTIN_SCHEMAS}
        return model

    def forget_schema(self, schema: str) -> None:
        self.schemas.discard(schema)
        for kind in (self.relations, self.functions, self.types):
            kind.difference_update({o for o in kind if o[0] == schema})


@dataclass
class _Place:
    """Where the statement being read is: its file, number and lines, and the session settings so far."""

    version: str
    file: str
    statement: int
    statement_line: int
    lines: Lines              # of the text being read: the file, or a function body
    first_line: int = 1       # the line of that text's first character in the file (a function body starts mid-file)
    path: tuple[str, ...] = DEFAULT_PATH
    check_bodies: bool = True

    def line(self, location: int | None) -> int:
        if location is None or location < 0:
            return self.statement_line
        return self.first_line + self.lines.of(location) - 1


def analyze(migrations: Iterable[tuple[str, str]], existing: Catalogue | None = None) -> list[Problem]:
    """Every object the migrations use before anything provides it, in order: (file name, SQL text) pairs, applied
    in that order on top of `existing`. A file that does not parse is one syntax problem (its statements are not
    read, so what it would create is unknown to the ones after it)."""
    parsed: list[tuple[str, str, str, Any]] = []
    for name, text in migrations:
        match = FILE_NAME.match(name)
        version = match[1] if match else name
        try:
            parsed.append((version, name, text, pg.parse_sql(text)))
        except pg.ParseError as exc:
            parsed.append((version, name, text, parse_error(text, exc)))
    model = _Model.of(existing or Catalogue())
    for *_, stmts in parsed:   # a name created anywhere in the sequence is user-defined everywhere in it
        if not isinstance(stmts, str):
            _collect_user_names(stmts, model)
    problems: list[Problem] = []
    for version, name, text, stmts in parsed:
        if isinstance(stmts, str):
            line = int(m[1]) if (m := re.match(r"line (\d+):", stmts)) else 1
            problems.append(Problem(version, name, 0, line, line, "syntax", stmts, "parse"))
            continue
        reader, lines = _Reader(model, problems), Lines(text)
        settings = {"path": DEFAULT_PATH, "check_bodies": True}   # a session setting lasts to the end of its file
        for number, raw in enumerate(stmts, start=1):
            place = _Place(version, name, number, lines.of(raw.stmt_location), lines, **settings)
            reader.statement(raw.stmt, place)
            settings = {"path": place.path, "check_bodies": place.check_bodies}
    return problems


def _collect_user_names(stmts: Any, model: _Model) -> None:
    for node, _, _ in _walk(stmts):
        if isinstance(node, ast.CreateFunctionStmt):
            model.user_functions.add(_names(node.funcname)[-1])
        elif isinstance(node, (ast.CreateEnumStmt, ast.CreateRangeStmt)):
            model.user_types.add(_names(node.typeName)[-1])
        elif isinstance(node, ast.CreateDomainStmt):
            model.user_types.add(_names(node.domainname)[-1])
        elif isinstance(node, ast.CompositeTypeStmt):
            model.user_types.add(node.typevar.relname)
        elif isinstance(node, ast.DefineStmt) and node.kind == ObjectType.OBJECT_TYPE:
            model.user_types.add(_names(node.defnames)[-1])
        elif isinstance(node, ast.DefineStmt) and node.kind == ObjectType.OBJECT_AGGREGATE:
            model.user_functions.add(_names(node.defnames)[-1])


def _walk(node: Any, parent: Any = None, name: str = "") -> Iterator[tuple[Any, Any, str]]:
    """(node, its parent node, the parent's field holding it), depth first, for every AST node under `node`."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item, parent, name)
    elif isinstance(node, ast.Node):
        yield node, parent, name
        for attr in node:
            value = getattr(node, attr, None)
            if isinstance(value, (ast.Node, list, tuple)):
                yield from _walk(value, node, attr)


def _names(value: Any) -> list[str]:
    """A qualified name (a list of String nodes) as its parts."""
    if isinstance(value, ast.String):
        return [value.sval]
    return [v.sval for v in value or () if isinstance(v, ast.String)]


class _Reader:
    def __init__(self, model: _Model, problems: list[Problem]) -> None:
        self.model = model
        self.problems = problems

    # -- what a statement needs -------------------------------------------------------------------------------
    def _missing(self, place: _Place, kind: str, missing: str, used_in: str, location: int | None) -> None:
        problem = Problem(place.version, place.file, place.statement, place.statement_line, place.line(location),
                          kind, missing, used_in)
        if not any(p.file == problem.file and p.statement == problem.statement and p.missing == missing
                   and p.kind == kind for p in self.problems):
            self.problems.append(problem)

    def _lookup(self, place: _Place) -> tuple[str, ...]:
        return ("pg_catalog", *place.path)

    def _from_extension(self, schema: str) -> bool:
        """A schema the model does not know, after an extension was created: it may be the extension's own."""
        return self.model.extension_schemas and schema not in self.model.schemas

    def need_schema(self, place: _Place, schema: str, used_in: str, location: int | None = None) -> None:
        if schema not in self.model.schemas and not self._from_extension(schema):
            self._missing(place, "schema", quote(schema), used_in, location)

    def need_relation(self, place: _Place, schema: str | None, name: str, used_in: str,
                      location: int | None = None) -> None:
        if schema:
            found = (schema in BUILTIN_SCHEMAS or (schema, name) in self.model.relations
                     or self._from_extension(schema))
        else:
            found = any((s, name) in self.model.relations for s in self._lookup(place)) or name.startswith("pg_")
        if not found:
            self._missing(place, "table", qualified(schema, name), used_in, location)

    def need_function(self, place: _Place, names: list[str], used_in: str, location: int | None = None,
                      always: bool = False) -> None:
        *schema, name = names
        if schema:
            s = schema[-1]
            found = (s in BUILTIN_SCHEMAS or s in self.model.provided or (s, name) in self.model.functions
                     or self._from_extension(s))
        elif name not in self.model.user_functions and (not always or name in BUILTIN_TRIGGER_FUNCTIONS):
            return          # the server's own (now(), gen_random_uuid(), count(), ...)
        else:
            found = any((s, name) in self.model.functions or s in self.model.provided for s in self._lookup(place))
        if not found:
            self._missing(place, "function", qualified(schema[-1] if schema else None, name) + "()", used_in, location)

    def need_type(self, place: _Place, type_name: ast.TypeName, used_in: str) -> None:
        if type_name.pct_type:
            return          # table.column%TYPE names a column, not a type
        *schema, name = _names(type_name.names)
        model = self.model
        if schema:
            s = schema[-1]
            found = (s in BUILTIN_SCHEMAS or s in model.provided or (s, name) in model.types
                     or (s, name) in model.relations or self._from_extension(s))
        elif name not in model.user_types:
            return
        else:
            found = any((s, name) in model.types or (s, name) in model.relations or s in model.provided
                        for s in self._lookup(place))
        if not found:
            self._missing(place, "type", qualified(schema[-1] if schema else None, name), used_in,
                          type_name.location)

    # -- what a statement creates -----------------------------------------------------------------------------
    def _schema_for(self, place: _Place, schema: str | None, location: int | None) -> str:
        if schema:
            self.need_schema(place, schema, "CREATE", location)
            return schema
        return next((s for s in place.path if s in self.model.schemas), place.path[0] if place.path else "public")

    def _create_relation(self, place: _Place, var: ast.RangeVar) -> tuple[str, str]:
        key = (self._schema_for(place, var.schemaname, var.location), var.relname)
        self.model.relations.add(key)
        return key

    # -- one statement ----------------------------------------------------------------------------------------
    def statement(self, stmt: Any, place: _Place) -> None:
        handler = getattr(self, "_" + type(stmt).__name__, None)
        if handler is not None:
            handler(stmt, place)
        else:
            self.uses(stmt, place)

    def uses(self, node: Any, place: _Place, skip: tuple = ()) -> None:
        """Check every relation, function and type `node` names (except the nodes in `skip`: what it creates)."""
        ctes = {n.ctename for n, _, _ in _walk(node) if isinstance(n, ast.CommonTableExpr)}
        skipped = {id(s) for s in skip}
        for child, parent, attr in _walk(node):
            if id(child) in skipped:
                continue
            if isinstance(child, ast.RangeVar):
                if child.schemaname is None and child.relname in ctes:
                    continue
                used_in = USES.get((type(parent).__name__, attr), "FROM / JOIN" if attr in (
                    "fromClause", "larg", "rarg", "usingClause", "sourceRelation") else "reads")
                self.need_relation(place, child.schemaname, child.relname, used_in, child.location)
            elif isinstance(child, ast.FuncCall):
                self.need_function(place, _names(child.funcname), "call", child.location)
            elif isinstance(child, ast.TypeName):
                self.need_type(place, child, "type")

    def _CreateStmt(self, stmt: ast.CreateStmt, place: _Place) -> None:
        schema, table = self._create_relation(place, stmt.relation)
        for column in stmt.tableElts or ():
            if isinstance(column, ast.ColumnDef):
                self._column_sequences(schema, table, column)
        self.uses(stmt, place, skip=(stmt.relation,))

    def _column_sequences(self, schema: str, table: str, column: ast.ColumnDef) -> None:
        """A serial or identity column's sequence: its SEQUENCE NAME, else <table>_<column>_seq."""
        serial = column.typeName is not None and _names(column.typeName.names)[-1] in SERIAL_TYPES
        for constraint in column.constraints or ():
            if isinstance(constraint, ast.Constraint) and constraint.contype == ConstrType.CONSTR_IDENTITY:
                self._identity_sequence(schema, table, column.colname, constraint)
                return
        if serial:
            self.model.relations.add((schema, f"{table}_{column.colname}_seq"))

    def _identity_sequence(self, schema: str, table: str, column: str, identity: ast.Constraint) -> None:
        named = next((_names(d.arg) for d in identity.options or () if d.defname == "sequence_name"), None)
        if named:
            *in_schema, name = named
            self.model.relations.add((in_schema[-1] if in_schema else schema, name))
        else:
            self.model.relations.add((schema, f"{table}_{column}_seq"))

    def _CreateForeignTableStmt(self, stmt: ast.CreateForeignTableStmt, place: _Place) -> None:
        self._CreateStmt(stmt.base, place)

    def _CreateTableAsStmt(self, stmt: ast.CreateTableAsStmt, place: _Place) -> None:
        self.uses(stmt.query, place)
        self._create_relation(place, stmt.into.rel)

    def _SelectStmt(self, stmt: ast.SelectStmt, place: _Place) -> None:
        into = stmt.intoClause
        self.uses(stmt, place, skip=(into.rel,) if into else ())
        if into:
            self._create_relation(place, into.rel)

    def _ViewStmt(self, stmt: ast.ViewStmt, place: _Place) -> None:
        self.uses(stmt.query, place)
        self._create_relation(place, stmt.view)

    def _CreateSeqStmt(self, stmt: ast.CreateSeqStmt, place: _Place) -> None:
        self._create_relation(place, stmt.sequence)

    def _IndexStmt(self, stmt: ast.IndexStmt, place: _Place) -> None:
        self.uses(stmt, place)
        if stmt.idxname:
            schema = stmt.relation.schemaname or self._schema_for(place, None, None)
            self.model.relations.add((schema, stmt.idxname))

    def _CreateSchemaStmt(self, stmt: ast.CreateSchemaStmt, place: _Place) -> None:
        self.model.schemas.add(stmt.schemaname)
        if stmt.schemaElts:
            inner = _Place(**{**place.__dict__, "path": (stmt.schemaname, *place.path)})
            for element in stmt.schemaElts:
                self.statement(element, inner)

    def _CreateExtensionStmt(self, stmt: ast.CreateExtensionStmt, place: _Place) -> None:
        schema = next((d.arg.sval for d in stmt.options or () if d.defname == "schema"), None)
        self.model.provided.add(self._schema_for(place, schema, None))
        self.model.extension_schemas = True

    def _CreateFunctionStmt(self, stmt: ast.CreateFunctionStmt, place: _Place) -> None:
        *schema, name = _names(stmt.funcname)
        self.model.functions.add((self._schema_for(place, schema[-1] if schema else None, None), name))
        options = {d.defname: d for d in stmt.options or ()}
        self.uses([stmt.parameters, stmt.returnType, stmt.sql_body], place)
        language = options.get("language")
        body = options.get("as")
        if (not place.check_bodies or body is None or language is None or stmt.sql_body is not None
                or getattr(language.arg, "sval", "").lower() != "sql"):
            return
        text = _names(body.arg)[0] if _names(body.arg) else ""
        path = place.path
        setting = options.get("set")
        if setting is not None and isinstance(setting.arg, ast.VariableSetStmt) and setting.arg.name == "search_path":
            path = _path_of(setting.arg, place.path)
        try:
            stmts = pg.parse_sql(text)
        except pg.ParseError:
            return          # the server reports it when the migration runs
        offset = body.arg_location if getattr(body, "arg_location", None) is not None else -1
        inner = _Place(place.version, place.file, place.statement, place.statement_line, Lines(text),
                       place.line(offset), path, place.check_bodies)
        for raw in stmts:
            self.uses(raw.stmt, inner)

    def _DoStmt(self, stmt: ast.DoStmt, place: _Place) -> None:
        """Not followed: PL/pgSQL, checked by the server as it runs."""

    def _DefineStmt(self, stmt: ast.DefineStmt, place: _Place) -> None:
        *schema, name = _names(stmt.defnames)
        target = (self._schema_for(place, schema[-1] if schema else None, None), name)
        if stmt.kind == ObjectType.OBJECT_TYPE:
            self.model.types.add(target)
        elif stmt.kind == ObjectType.OBJECT_AGGREGATE:
            self.model.functions.add(target)

    def _create_type(self, names: list[str], place: _Place) -> None:
        *schema, name = names
        self.model.types.add((self._schema_for(place, schema[-1] if schema else None, None), name))

    def _CreateEnumStmt(self, stmt: ast.CreateEnumStmt, place: _Place) -> None:
        self._create_type(_names(stmt.typeName), place)

    def _CreateRangeStmt(self, stmt: ast.CreateRangeStmt, place: _Place) -> None:
        self._create_type(_names(stmt.typeName), place)

    def _CreateDomainStmt(self, stmt: ast.CreateDomainStmt, place: _Place) -> None:
        self.uses([stmt.typeName, stmt.constraints], place)
        self._create_type(_names(stmt.domainname), place)

    def _CompositeTypeStmt(self, stmt: ast.CompositeTypeStmt, place: _Place) -> None:
        self.uses(stmt.coldeflist, place)
        self._create_relation(place, stmt.typevar)

    def _CreateTrigStmt(self, stmt: ast.CreateTrigStmt, place: _Place) -> None:
        self.uses([stmt.relation, stmt.whenClause], place)
        self.need_function(place, _names(stmt.funcname), "EXECUTE FUNCTION", stmt.relation.location, always=True)

    def _AlterTableStmt(self, stmt: ast.AlterTableStmt, place: _Place) -> None:
        self.uses(stmt, place, skip=(stmt.relation,) if stmt.missing_ok else ())
        var = stmt.relation
        schema = var.schemaname or next((s for s in place.path if (s, var.relname) in self.model.relations), "public")
        for cmd in stmt.cmds or ():     # ADD COLUMN ... serial/IDENTITY, ALTER COLUMN ... ADD GENERATED AS IDENTITY
            if isinstance(cmd.def_, ast.ColumnDef):
                self._column_sequences(schema, var.relname, cmd.def_)
            elif isinstance(cmd.def_, ast.Constraint) and cmd.def_.contype == ConstrType.CONSTR_IDENTITY:
                self._identity_sequence(schema, var.relname, cmd.name, cmd.def_)

    def _RenameStmt(self, stmt: ast.RenameStmt, place: _Place) -> None:
        kind, model = stmt.renameType, self.model
        if stmt.relation is not None:
            var = stmt.relation
            if not stmt.missing_ok:
                self.need_relation(place, var.schemaname, var.relname, "RENAME", var.location)
            if kind in RELATION_KINDS:
                schema = var.schemaname or next((s for s in place.path if (s, var.relname) in model.relations),
                                                self._schema_for(place, None, None))
                model.relations.discard((schema, var.relname))
                model.relations.add((schema, stmt.newname))
        elif kind == ObjectType.OBJECT_SCHEMA:
            if not stmt.missing_ok:
                self.need_schema(place, stmt.subname, "RENAME")
            for kind_set in (model.relations, model.functions, model.types):
                moved = {o for o in kind_set if o[0] == stmt.subname}
                kind_set.difference_update(moved)
                kind_set.update((stmt.newname, n) for _, n in moved)
            model.schemas.discard(stmt.subname)
            model.schemas.add(stmt.newname)
        elif kind in FUNCTION_KINDS or kind in TYPE_KINDS:
            names = _names(stmt.object.objname if kind in FUNCTION_KINDS else stmt.object)
            self._move(place, kind, names, None, stmt.newname, "RENAME", stmt.missing_ok)

    def _AlterObjectSchemaStmt(self, stmt: ast.AlterObjectSchemaStmt, place: _Place) -> None:
        self.need_schema(place, stmt.newschema, "SET SCHEMA")
        kind = stmt.objectType
        if stmt.relation is not None:
            var = stmt.relation
            if not stmt.missing_ok:
                self.need_relation(place, var.schemaname, var.relname, "SET SCHEMA", var.location)
            old = var.schemaname or next((s for s in place.path if (s, var.relname) in self.model.relations),
                                         "public")
            self.model.relations.discard((old, var.relname))
            self.model.relations.add((stmt.newschema, var.relname))
        elif kind in FUNCTION_KINDS or kind in TYPE_KINDS:
            names = _names(stmt.object.objname if kind in FUNCTION_KINDS else stmt.object)
            self._move(place, kind, names, stmt.newschema, None, "SET SCHEMA", stmt.missing_ok)

    def _move(self, place: _Place, kind: ObjectType, names: list[str], schema: str | None, name: str | None,
              used_in: str, missing_ok: bool) -> None:
        functions = kind in FUNCTION_KINDS
        if not missing_ok:
            if functions:
                self.need_function(place, names, used_in, always=True)
            else:
                self.need_type(place, ast.TypeName(names=tuple(ast.String(sval=n) for n in names), location=-1),
                               used_in)
        *old_schema, old_name = names
        found = self.model.functions if functions else self.model.types
        old = (old_schema[-1] if old_schema else next((s for s in place.path if (s, old_name) in found), "public"),
               old_name)
        found.discard(old)
        found.add((schema or old[0], name or old_name))

    def _DropStmt(self, stmt: ast.DropStmt, place: _Place) -> None:
        kind, model = stmt.removeType, self.model
        for obj in stmt.objects or ():
            if kind in RELATION_KINDS:
                *schema, name = _names(obj)
                if not stmt.missing_ok:
                    self.need_relation(place, schema[-1] if schema else None, name, "DROP")
                for s in ([schema[-1]] if schema else self._lookup(place)):
                    model.relations.discard((s, name))
            elif kind in ON_RELATION_KINDS:
                *schema, table, _ = _names(obj)
                if not stmt.missing_ok:
                    self.need_relation(place, schema[-1] if schema else None, table, "DROP ... ON")
            elif kind in FUNCTION_KINDS:
                names = _names(obj.objname)
                if not stmt.missing_ok:
                    self.need_function(place, names, "DROP", always=True)
                *schema, name = names
                for s in ([schema[-1]] if schema else self._lookup(place)):
                    model.functions.discard((s, name))
            elif kind in TYPE_KINDS:
                if not stmt.missing_ok:
                    self.need_type(place, obj, "DROP")
                *schema, name = _names(obj.names)
                for s in ([schema[-1]] if schema else self._lookup(place)):
                    model.types.discard((s, name))
            elif kind == ObjectType.OBJECT_SCHEMA:
                name = _names(obj)[0]
                if not stmt.missing_ok:
                    self.need_schema(place, name, "DROP")
                model.forget_schema(name)

    def _GrantStmt(self, stmt: ast.GrantStmt, place: _Place) -> None:
        kind = stmt.objtype
        if stmt.targtype == GrantTargetType.ACL_TARGET_ALL_IN_SCHEMA:
            for schema in stmt.objects or ():
                self.need_schema(place, schema.sval, "GRANT ON ALL ... IN SCHEMA")
        elif kind == ObjectType.OBJECT_SCHEMA:
            for schema in stmt.objects or ():
                self.need_schema(place, schema.sval, "GRANT ON SCHEMA")
        elif kind in FUNCTION_KINDS:
            for obj in stmt.objects or ():
                self.need_function(place, _names(obj.objname), "GRANT ON FUNCTION")
        elif kind in RELATION_KINDS:
            self.uses(stmt, place)

    def _AlterDefaultPrivilegesStmt(self, stmt: ast.AlterDefaultPrivilegesStmt, place: _Place) -> None:
        for option in stmt.options or ():
            if option.defname == "schemas":
                for schema in _names(option.arg):
                    self.need_schema(place, schema, "ALTER DEFAULT PRIVILEGES IN SCHEMA")

    def _CommentStmt(self, stmt: ast.CommentStmt, place: _Place) -> None:
        kind = stmt.objtype
        if kind in RELATION_KINDS or kind == ObjectType.OBJECT_COLUMN:
            names = _names(stmt.object)
            *schema, name = names[:-1] if kind == ObjectType.OBJECT_COLUMN else names
            self.need_relation(place, schema[-1] if schema else None, name, "COMMENT ON")
        elif kind in FUNCTION_KINDS:
            self.need_function(place, _names(stmt.object.objname), "COMMENT ON", always=True)
        elif kind == ObjectType.OBJECT_SCHEMA:
            self.need_schema(place, _names(stmt.object)[0], "COMMENT ON")

    def _VariableSetStmt(self, stmt: ast.VariableSetStmt, place: _Place) -> None:
        if stmt.is_local:
            return          # SET LOCAL ends with the migration's transaction (the rest of this file reads as is)
        if stmt.name == "search_path":
            place.path = _path_of(stmt, DEFAULT_PATH)
        elif stmt.name == "check_function_bodies":
            value = _setting_words(stmt)
            place.check_bodies = stmt.kind != VariableSetKind.VAR_SET_VALUE or value[:1] not in (["false"], ["off"])
        elif stmt.kind == VariableSetKind.VAR_RESET_ALL:
            place.path, place.check_bodies = DEFAULT_PATH, True


def _setting_words(stmt: ast.VariableSetStmt) -> list[str]:
    words = []
    for arg in stmt.args or ():
        value = getattr(arg, "val", None)
        words.append(str(getattr(value, "sval", None) or getattr(value, "boolval", None)
                         or getattr(value, "ival", "")).lower())
    return words


def _path_of(stmt: ast.VariableSetStmt, default: tuple[str, ...]) -> tuple[str, ...]:
    """The schemas of a SET search_path (TO DEFAULT / RESET: Supabase's default); "$user" and '' are dropped."""
    if stmt.kind != VariableSetKind.VAR_SET_VALUE:
        return DEFAULT_PATH
    schemas = []
    for arg in stmt.args or ():
        value = getattr(arg, "val", None)
        text = getattr(value, "sval", None)
        if text is None:
            continue
        for part in text.split(",") if "," in text else [text]:
            part = part.strip()
            if part and part != "$user":
                schemas.append(part.strip('"') if part.startswith('"') else part)
    return tuple(schemas)
