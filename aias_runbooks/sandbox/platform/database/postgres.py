"""A real PostgreSQL server for the sandbox: this machine's binaries if any, else the pgserver wheel's."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from .... import paths
from ... import processes

REQUIRED = ("initdb", "pg_ctl", "postgres")
# The bootstrap superuser, as on Supabase: a project's own `postgres` login is not a superuser (schema.bootstrap).
SUPERUSER = "supabase_admin"


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    source: str
    version: str
    pkglibdir: Path

    @property
    def has_pg_stat_statements(self) -> bool:
        return (self.pkglibdir / "pg_stat_statements.so").is_file()


def find_binaries() -> Binaries:
    """AIAS_PG_BINDIR, then a server on this machine (newest first), then the pgserver wheel."""
    for bindir, source in paths.postgres_bindirs():
        folder = Path(bindir)
        if bindir and all(os.access(folder / b, os.X_OK) for b in REQUIRED):
            return _describe(folder, source)
    raise RuntimeError("no PostgreSQL server binaries found: install PostgreSQL, or `pip install pgserver` "
                       "(make demo does), or set AIAS_PG_BINDIR to a folder holding initdb and pg_ctl")


def _describe(bindir: Path, source: str) -> Binaries:
    out = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True).stdout
    version = match.group(1) if (match := re.search(r"\(PostgreSQL\) (\S+)", out)) else out.strip()
    pkglibdir = bindir.parent / "lib"
    if (bindir / "pg_config").exists():
        out = subprocess.run([bindir / "pg_config", "--pkglibdir"], capture_output=True, text=True)
        pkglibdir = Path(out.stdout.strip()) if out.returncode == 0 else pkglibdir
    return Binaries(bindir, source, version, pkglibdir)


def run_as() -> dict[str, Any]:
    """Postgres refuses to run as root: when we are root, run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid}
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL as")


def _check_reachable(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise RuntimeError(f"PostgreSQL runs as an unprivileged user and cannot enter {parent}; "
                               "choose a sandbox folder (AIAS_SANDBOX_DIR) under world-traversable folders")


def init(binaries: Binaries, data_dir: Path, password: str) -> None:
    """initdb a fresh cluster whose superuser is SUPERUSER (password: `password`): scram auth over TCP."""
    owner = run_as()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, mode=0o700)
    _check_reachable(data_dir)
    pwfile = data_dir.parent / "pwfile"
    pwfile.touch(mode=0o600)
    pwfile.write_text(password + "\n")
    if owner:
        for path in (data_dir, pwfile):
            os.chown(path, owner["user"], owner["group"])
    try:
        result = subprocess.run([binaries.bindir / "initdb", "-D", data_dir, "-U", SUPERUSER,
                                 f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                                 "-E", "UTF8", "--locale=C"], capture_output=True, text=True, **owner)
    finally:
        pwfile.unlink()
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")


def configure(binaries: Binaries, data_dir: Path, port: int, max_connections: int = 50,
              shared_buffers: str = "128MB") -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": "''",
        "max_connections": str(max_connections), "superuser_reserved_connections": "3",
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "shared_buffers": f"'{shared_buffers}'", "log_min_messages": "warning", "track_io_timing": "on",
        "log_connections": "on",
        # logical, as Supabase runs it (Realtime and logical replication hold slots): a scenario's slot is real
        "wal_level": "logical",
    }
    if binaries.has_pg_stat_statements:
        settings |= {"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track": "all"}
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.writelines(f"{k} = {v}\n" for k, v in settings.items())


def start(binaries: Binaries, data_dir: Path, log: Path) -> int:
    """pg_ctl start and wait; returns the postmaster pid."""
    owner = run_as()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    if owner:
        os.chown(log, owner["user"], owner["group"])
    result = subprocess.run([binaries.bindir / "pg_ctl", "-D", data_dir, "-l", log, "-w", "-t", "60", "start"],
                            capture_output=True, text=True, **owner)
    if result.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}\n"
                           + "\n".join(log.read_text(errors="replace").splitlines()[-10:]))
    return postmaster_pid(data_dir)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def stop(binaries_dir: Path, data_dir: Path) -> bool:
    """pg_ctl stop -m fast; False when it was not running."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    result = subprocess.run([Path(binaries_dir) / "pg_ctl", "-D", data_dir, "-m", "fast", "-w", "stop"],
                            capture_output=True, text=True, **run_as())
    return result.returncode == 0


def admin_connection(folder: Path, timeout: float = 15) -> psycopg.Connection:
    """A superuser connection to the sandbox's server; retried briefly because a stopped fault helper's slots free
    up asynchronously."""
    dsn = processes.sandbox_env(folder)["AIAS_SANDBOX_ADMIN_DATABASE_URL"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, application_name="aias-sandbox/control")
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
