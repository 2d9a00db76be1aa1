"""Database backups: the profile's backup folder, pg_dump and pg_restore, and what a backup says about itself.

A backup is two files in the profile's `backups.folder`: `<env>-<UTC time>Z-<4 hex>.dump` (pg_dump's custom
format, -Fc, of the profile's `backups.schemas`) and beside it the same name with `.json`: when, size, SHA-256,
server version, and every table's exact row count and checksum (sql/backup_tables.sql). The table figures are read
in the very snapshot the dump is taken in (pg_export_snapshot, then pg_dump --snapshot), so the backup of a busy
database and its metadata agree row for row. A dump without its metadata is not a backup (listed as incomplete).
Files are created 0600 in a 0700 folder under a new name and never overwritten (hard links, which refuse to
replace a file).

Passwords never reach a command line or an output: pg_dump and pg_restore get a connection string without one
and read it from a passfile (0600, in a private temporary folder, deleted afterwards) named by PGPASSFILE.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .. import paths
from ..dsn import split_url
from ..errors import first_line
from ..settings import Environment, Secret

FORMAT = "aias-runbooks backup 1"
# aias_runbooks too: the monitoring role's views of Supabase Auth depend on auth's tables, so a restore that drops
# those tables (--clean) must drop and recreate the views with them
DEFAULT_SCHEMAS = ("public", "auth", "aias_runbooks")
TOOL_TIMEOUT_S = 3600          # one pg_dump or pg_restore; the runner's cell timeout bounds a run as a whole
CHECKSUM_TIMEOUT_S = 600       # the table checksums read every row once
# Row text is compared across sessions and servers: spell every value the same way in each. Settings of the
# checksums' transaction only (a transaction pooler hands the server session to another client next).
CANONICAL_SQL = ("SET LOCAL TIME ZONE 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = 'postgres'; "
                 "SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'; SET LOCAL search_path = pg_catalog")
NO_FOLDER = "the environment profile names no backup folder (`backups: {folder: ...}`)"
# verify empties the scratch database: only one whose comment starts with this (COMMENT ON DATABASE ... IS ...)
SCRATCH_MARK = "aias-runbooks scratch"
LISTING_COLUMNS = ["backup", "created_at", "age_hours", "size_mb", "tables", "rows", "sha256", "complete"]


@dataclass(frozen=True)
class Tools:
    pg_dump: Path
    pg_restore: Path
    version: str
    source: str


@dataclass
class Outcome:
    """What a create, verify or restore did: `problem` says why it could not (nothing was judged), `failed`
    why it ran and went wrong; `tables` compares each table with the backup's metadata."""

    backup: str = ""
    problem: str | None = None
    failed: str | None = None
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    tables: pd.DataFrame | None = None
    details: dict[str, Any] = field(default_factory=dict)


def folder_of(env: Environment) -> Path | None:
    folder = env.backups.get("folder")
    return Path(folder) if folder else None


def schemas_of(env: Environment) -> list[str]:
    return [str(s) for s in env.backups.get("schemas") or DEFAULT_SCHEMAS]


def find_tools() -> tuple[Tools | None, list[str]]:
    """pg_dump and pg_restore from the folders the sandbox looks in for a server (AIAS_PG_BINDIR, pg_config,
    /usr/lib/postgresql/<newest>/bin, the pgserver wheel), then PATH; also the places looked in."""
    looked = []
    places = [*paths.postgres_bindirs(), *((str(Path(p).parent), "PATH") for p in [shutil.which("pg_dump")] if p)]
    for bindir, source in places:
        if not bindir:
            continue
        looked.append(bindir)
        dump, restore = Path(bindir) / "pg_dump", Path(bindir) / "pg_restore"
        if os.access(dump, os.X_OK) and os.access(restore, os.X_OK):
            out = subprocess.run([dump, "--version"], capture_output=True, text=True, timeout=30)
            return Tools(dump, restore, out.stdout.strip(), source), looked
    return None, looked + ["PATH"]


def target_of(dsn: Secret) -> str:
    """host:port/database of a connection URL: how the dry run names the target, and what confirm_target repeats."""
    parts = split_url(dsn.reveal())
    return f"{parts.host or 'localhost'}:{parts.port or 5432}/{parts.database or parts.username or ''}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_of(folder: Path) -> list[dict[str, Any]]:
    """Every backup's metadata in the folder, newest first; each with `path` (the dump) and `complete`."""
    found = []
    for meta_path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            meta = json.loads(meta_path.read_text())
            created = datetime.fromisoformat(meta["created_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        dump = folder / Path(str(meta.get("file") or meta_path.with_suffix(".dump").name)).name   # never elsewhere
        found.append(meta | {"path": dump, "complete": dump.is_file(), "created": created})
    return sorted(found, key=lambda m: m["created"], reverse=True)


def listing(folder: Path | None, now: datetime | None = None) -> pd.DataFrame:
    """The backups in the folder, newest first, with their age in hours; attrs["error"] when no folder is set."""
    if folder is None:
        frame = pd.DataFrame(columns=LISTING_COLUMNS)
        frame.attrs.update(error=NO_FOLDER)
        return frame
    now = now or datetime.now(timezone.utc)
    rows = [{"backup": m["path"].name, "created_at": m["created"].strftime("%Y-%m-%d %H:%M:%S UTC"),
             "age_hours": round((now - m["created"]).total_seconds() / 3600, 2),
             "size_mb": round(m.get("size_bytes", 0) / 1e6, 2), "tables": len(m.get("tables", {})),
             "rows": sum(t.get("rows", 0) for t in m.get("tables", {}).values()),
             "sha256": str(m.get("sha256", ""))[:12], "complete": m["complete"]} for m in metadata_of(folder)]
    frame = pd.DataFrame(rows, columns=LISTING_COLUMNS)
    frame.attrs.update(folder=str(folder))
    return frame


def chosen(folder: Path | None, name: str = "") -> tuple[dict[str, Any] | None, str | None]:
    """The named backup (file name, with or without .dump), else the newest complete one; or why there is none."""
    if folder is None:
        return None, NO_FOLDER
    found = metadata_of(folder)
    if name:
        stem = name.removesuffix(".dump").removesuffix(".json")
        match = [m for m in found if m["path"].stem == stem]
        if not match:
            return None, f"no backup named {name!r} in {folder}"
        return (match[0], None) if match[0]["complete"] else (None, f"{match[0]['path'].name} is missing")
    complete = [m for m in found if m["complete"]]
    return (complete[0], None) if complete else (None, f"no backup in {folder}")


@contextlib.contextmanager
def _libpq(dsn: Secret, application: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(connection string without the password, environment) for pg_dump/pg_restore: the password is in a
    passfile of a private temporary folder, named by PGPASSFILE, removed when the block ends."""
    from psycopg.conninfo import make_conninfo
    parts = split_url(dsn.reveal())
    options = {k: v for k, v in parts.query.items() if isinstance(v, str) and k not in ("password", "passfile")}
    conninfo = make_conninfo("", host=parts.host, port=parts.port, dbname=parts.database, user=parts.username,
                             **options)
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGOPTIONS")}
    with tempfile.TemporaryDirectory(prefix="aias-pg-") as private:
        passfile = Path(private) / "pgpass"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            password = (parts.password or "").replace("\\", "\\\\").replace(":", "\\:")
            fh.write(f"*:*:*:*:{password}\n" if "\n" not in password else "")
        yield conninfo, env | {"PGPASSFILE": str(passfile), "PGAPPNAME": application[:63],
                               "PGCONNECT_TIMEOUT": env.get("PGCONNECT_TIMEOUT", "10")}


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])[:600] or "(no message)"


def checksums(conn: Any, schemas: list[str]) -> pd.DataFrame:
    """Each table's exact rows and checksum (sql/backup_tables.sql), values spelled canonically, on an open
    SQLAlchemy connection; bounded by CHECKSUM_TIMEOUT_S. In the caller's transaction (the backup's snapshot), or
    else in a guarded read-only one of its own; either way the settings are the transaction's (SET LOCAL), so
    they hold for the query and nothing outlives it, through a transaction pooler too."""
    from sqlalchemy import text

    from .database import answer_within, begin_guarded, end_guarded, idle, load_sql
    description, sql = load_sql("backup_tables")
    own = idle(conn)
    with answer_within(conn, CHECKSUM_TIMEOUT_S + 15):
        if own:
            begin_guarded(conn)
        try:
            for statement in CANONICAL_SQL.split("; "):
                conn.execute(text(statement))
            conn.execute(text(f"SET LOCAL statement_timeout = '{CHECKSUM_TIMEOUT_S}s'"))
            result = conn.execute(text(sql), {"schemas": schemas})
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        finally:
            if own:
                end_guarded(conn)
    frame.attrs.update(query="backup_tables", description=description)
    return frame


def read_checksums(dsn: Secret, schemas: list[str], application: str) -> pd.DataFrame:
    """checksums() through a read-only session of its own."""
    with _session(dsn, application) as conn:
        return checksums(conn, schemas)


def read_estimates(dsn: Secret, schemas: list[str], application: str) -> pd.DataFrame:
    """Each table's estimated rows (sql/table_row_estimates.sql) through a read-only session of its own: what a
    restore would replace, without reading the target's rows (checksums() reads them all: 20 s at 10 M rows)."""
    from . import database
    with _session(dsn, application) as conn:
        return database.query(conn, "table_row_estimates", schemas=schemas)


@contextlib.contextmanager
def _session(dsn: Secret, application: str) -> Iterator[Any]:
    """One read-only connection to `dsn` (sources.database.connect), closed with its engine."""
    from . import database
    engine = database.connect(dsn, application)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def replaced(expected: dict[str, dict[str, Any]], estimates: pd.DataFrame) -> pd.DataFrame:
    """Per table of the backup: its rows there and, estimated, here (missing: the restore creates it)."""
    here = dict(zip(estimates["table"], estimates["rows"], strict=True))
    rows = [{"table": table, "rows_in_backup": meta["rows"], "rows_here": here.get(table),
             "state": "missing" if table not in here else "present"} for table, meta in sorted(expected.items())]
    return pd.DataFrame(rows, columns=["table", "rows_in_backup", "rows_here", "state"]).astype({"rows_here": "Int64"})


def compare(expected: dict[str, dict[str, Any]], actual: pd.DataFrame) -> pd.DataFrame:
    """Per table of the backup: its rows and checksum there and here, and whether they are equal."""
    here = {r.table: (int(r.rows), r.checksum) for r in actual.itertuples(index=False)}
    rows = []
    for table, meta in sorted(expected.items()):
        rows_now, checksum = here.get(table, (None, None))
        state = ("missing" if rows_now is None else "equal" if checksum == meta["checksum"] and rows_now == meta["rows"]
                 else "rows differ" if rows_now != meta["rows"] else "content differs")
        rows.append({"table": table, "rows_in_backup": meta["rows"], "rows_here": rows_now, "state": state})
    return pd.DataFrame(rows, columns=["table", "rows_in_backup", "rows_here", "state"])


def _new_name(env_name: str, now: datetime) -> str:
    return f"{env_name}-{now:%Y%m%d-%H%M%S}Z-{secrets.token_hex(2)}"


def _publish(source: Path, target: Path) -> None:
    """Give `source` its final name; FileExistsError rather than replace a file that has it."""
    os.link(source, target)
    source.unlink()


def create(env: Environment, application: str, run_id: str = "") -> Outcome:
    """pg_dump -Fc of the profile's schemas into its backup folder, with the metadata beside it.

    Read-only throughout: one REPEATABLE READ, read-only session exports its snapshot, pg_dump takes the dump in
    it while the session reads each table's rows and checksum, then both end."""
    from sqlalchemy.exc import SQLAlchemyError

    from . import database
    folder, schemas, dsn = folder_of(env), schemas_of(env), env.secret("backup_database_url")
    if folder is None:
        return Outcome(problem=NO_FOLDER)
    if dsn is None:
        return Outcome(problem=env.missing_secret_message("backup_database_url"))
    tools, looked = find_tools()
    if tools is None:
        return Outcome(problem="pg_dump and pg_restore were not found (looked in " + ", ".join(looked) + ")",
                       details={"missing": "pg_dump"})
    started, now = time.monotonic(), datetime.now(timezone.utc)
    name = _new_name(env.name, now)
    partial = folder / f".{name}.dump.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        return Outcome(name, failed=f"cannot write in the backup folder {folder}: {exc.strerror or exc}")
    try:
        engine = database.connect(dsn, application)
        with engine.connect() as conn, _libpq(dsn, application) as (conninfo, tool_env):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot, version = conn.exec_driver_sql(
                    "SELECT pg_export_snapshot(), current_setting('server_version')").one()
                dump = subprocess.Popen(
                    [tools.pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}",
                     "--lock-wait-timeout=60000", *(f"--schema={s}" for s in schemas), f"--file={partial}",
                     f"--dbname={conninfo}"], env=tool_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
                try:
                    tables = checksums(conn, schemas)
                finally:
                    _, err = dump.communicate(timeout=TOOL_TIMEOUT_S)
        engine.dispose()
    except (SQLAlchemyError, OSError, ValueError, subprocess.SubprocessError) as exc:
        partial.unlink(missing_ok=True)
        return Outcome(name, failed=f"{type(exc).__name__}: {first_line(exc)}",
                       seconds=round(time.monotonic() - started, 2))
    if dump.returncode != 0:
        partial.unlink(missing_ok=True)
        return Outcome(name, failed=f"pg_dump exited {dump.returncode}: {_tail(err)}",
                       seconds=round(time.monotonic() - started, 2))
    meta = {"format": FORMAT, "file": f"{name}.dump", "created_at": now.isoformat(timespec="seconds"),
            "environment": env.name, "target": target_of(dsn), "schemas": schemas, "server_version": version,
            "pg_dump": tools.version, "run_id": run_id, "size_bytes": partial.stat().st_size,
            "sha256": sha256_of(partial), "dump_seconds": round(time.monotonic() - started, 2),
            "tables": {r.table: {"rows": int(r.rows), "checksum": r.checksum} for r in tables.itertuples(index=False)}}
    try:
        _publish(partial, folder / meta["file"])
        staged = folder / f".{name}.json.partial"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
        _publish(staged, folder / f"{name}.json")
    except OSError as exc:
        partial.unlink(missing_ok=True)
        return Outcome(name, failed=f"could not store the backup: {exc}")
    return Outcome(meta["file"], seconds=round(time.monotonic() - started, 2), metadata=meta)


def check_file(meta: dict[str, Any]) -> str | None:
    """Why the dump is not the file its metadata describes (size, SHA-256), or None when it is."""
    path = Path(meta["path"])
    if not path.is_file():
        return f"{path.name} is missing"
    digest = sha256_of(path)
    if digest != meta.get("sha256"):
        return (f"SHA-256 of {path.name} is {digest[:16]}..., its metadata says {str(meta.get('sha256'))[:16]}...: "
                "the file changed or was damaged after it was written")
    return None


def _same_database(a: Secret, b: Secret) -> bool:
    pa, pb = split_url(a.reveal()), split_url(b.reveal())
    return ((pa.host or "localhost", pa.port or 5432, pa.database or pa.username)
            == (pb.host or "localhost", pb.port or 5432, pb.database or pb.username))


def restore(tools: Tools, dsn: Secret, path: Path, application: str, clean: bool, owner: bool = True) -> str | None:
    """pg_restore --single-transaction --exit-on-error of the dump into the URL's database (--clean --if-exists
    when `clean`): all of it or nothing. Returns pg_restore's complaint when it failed, else None.

    A clean restore replaces what is in the schemas, never a schema the target already has: dropped and created
    again, `public` would come back without the grants the platform gave it (PUBLIC's USAGE above all: the app and
    the monitor would be refused every table), since a dump states a schema's grants only as changes from its
    initial ones."""
    from sqlalchemy.exc import SQLAlchemyError
    with _libpq(dsn, application) as (conninfo, tool_env), tempfile.TemporaryDirectory(prefix="aias-toc-") as work:
        try:
            listing = _keeping_schemas(tools, dsn, path, tool_env, application, Path(work)) if clean else None
        except (subprocess.SubprocessError, OSError, SQLAlchemyError) as exc:
            return f"nothing restored: the dump's contents or the target's schemas could not be read ({_why(exc)})"
        command = [tools.pg_restore, "--no-password", "--single-transaction", "--exit-on-error",
                   *(["--clean", "--if-exists"] if clean else []), *([] if owner else ["--no-owner"]),
                   *([f"--use-list={listing}"] if listing else []), f"--dbname={conninfo}", str(path)]
        try:
            done = subprocess.run(command, env=tool_env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"pg_restore did not finish within {TOOL_TIMEOUT_S} s (stopped; its transaction rolled back)"
    return None if done.returncode == 0 else f"pg_restore exited {done.returncode}: {_tail(done.stderr)}"


# pg_restore --list: a schema's own entries ("SCHEMA - name", "ACL - SCHEMA name", "COMMENT - SCHEMA name")
TOC_SCHEMA = re.compile(r"^\d+; \d+ \d+ (?:SCHEMA - (?P<schema>\S+)|(?:ACL|COMMENT) - SCHEMA (?P<of>\S+)) ")


def _keeping_schemas(tools: Tools, dsn: Secret, path: Path, tool_env: dict[str, str], application: str,
                     work: Path) -> Path | None:
    """The dump's table of contents (read once) less the entries of the schemas the target already has, written
    for pg_restore --use-list; None when the target has none of them (the restore creates them)."""
    done = subprocess.run([tools.pg_restore, "--list", str(path)], env=tool_env, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S, check=True)
    toc = [(line, TOC_SCHEMA.match(line)) for line in done.stdout.splitlines()]
    keep = _existing_schemas(dsn, [m["schema"] for _, m in toc if m and m["schema"]], application)
    if not keep:
        return None
    listing = work / "restore.list"
    listing.write_text("".join(f"{line}\n" for line, m in toc if not (m and (m["schema"] or m["of"]) in keep)))
    return listing


def _why(exc: BaseException) -> str:
    """One line for a failed step: pg_restore's own complaint when it said one."""
    if isinstance(exc, subprocess.CalledProcessError) and exc.stderr:
        return _tail(exc.stderr, 1)
    return first_line(exc)


def _existing_schemas(dsn: Secret, schemas: list[str], application: str) -> set[str]:
    """Which of `schemas` the target database has."""
    from . import database
    with _session(dsn, application) as conn:
        frame = database.query(conn, "schemas_present", schemas=schemas)
    return set(frame["schema_name"])


class NotScratch(Exception):
    """The scratch URL names a database not marked as scratch: verify will not empty it."""


def _empty_scratch(dsn: Secret, schemas: list[str], application: str) -> None:
    """Drop the backup's schemas (and everything in them) from the scratch database: the restore starts clean.
    NotScratch, and nothing dropped, unless the database's comment starts with SCRATCH_MARK: a URL that names a
    real database by mistake must not have it emptied on every scheduled run."""
    import psycopg
    from psycopg import sql
    parts = split_url(dsn.reveal())
    with psycopg.connect(host=parts.host, port=parts.port, dbname=parts.database, user=parts.username,
                         password=parts.password, application_name=application[:63], connect_timeout=10,
                         autocommit=True, **{k: v for k, v in parts.query.items() if isinstance(v, str)}) as conn:
        mark = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                            "WHERE datname = current_database()").fetchone()[0]
        if not (mark or "").startswith(SCRATCH_MARK):
            raise NotScratch(f"the scratch database {target_of(dsn)} is not marked as scratch, so verify does not "
                             f"empty it: mark it with COMMENT ON DATABASE <name> IS '{SCRATCH_MARK}'")
        conn.execute("SET lock_timeout = '10s'")
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def verify(env: Environment, meta: dict[str, Any], application: str) -> Outcome:
    """The dump's SHA-256 against its metadata, then a restore into the scratch database (never the target) and
    every table's rows and checksum there against the metadata."""
    import psycopg
    from sqlalchemy.exc import SQLAlchemyError
    name, started = Path(meta["path"]).name, time.monotonic()
    if damaged := check_file(meta):
        return Outcome(name, failed=damaged, details={"check": "sha256"})
    scratch = env.secret("scratch_database_url")
    if scratch is None:
        return Outcome(name, problem=env.missing_secret_message("scratch_database_url"))
    try:
        for role in ("backup_database_url", "database_url"):
            if (target := env.secret(role)) is not None and _same_database(scratch, target):
                return Outcome(name, problem=f"scratch_database_url names the same database as {role}: verify "
                                             "restores into a scratch database, never into the target")
        where = target_of(scratch)
    except ValueError as exc:
        return Outcome(name, problem=f"{scratch.name}: {exc}")
    tools, looked = find_tools()
    if tools is None:
        return Outcome(name, problem="pg_restore was not found (looked in " + ", ".join(looked) + ")",
                       details={"missing": "pg_restore"})
    try:
        _empty_scratch(scratch, list(meta.get("schemas") or schemas_of(env)), application)
        if complaint := restore(tools, scratch, Path(meta["path"]), application, clean=False, owner=False):
            return Outcome(name, failed=complaint, seconds=round(time.monotonic() - started, 2),
                           details={"check": "restore", "scratch": where})
        restored_s = round(time.monotonic() - started, 2)
        actual = read_checksums(scratch, list(meta.get("schemas") or schemas_of(env)), application)
    except NotScratch as exc:
        return Outcome(name, problem=str(exc))
    except (psycopg.Error, SQLAlchemyError, OSError) as exc:
        return Outcome(name, problem=f"the scratch database {where} could not be used: {first_line(exc)}")
    tables = compare(meta.get("tables", {}), actual)
    return Outcome(name, seconds=round(time.monotonic() - started, 2), metadata=meta, tables=tables,
                   details={"check": "restore", "scratch": where, "restore_seconds": restored_s})


