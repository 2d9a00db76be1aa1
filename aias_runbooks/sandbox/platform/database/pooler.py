"""A real PgBouncer in front of the sandbox's Postgres (`sandbox up --pooler transaction|session`).

Most Supabase projects reach Postgres through a pooler (transaction mode on port 6543, session mode on 5432), and
a pooler refuses or drops what a direct connection accepts (startup `options`, session state between
transactions, prepared statements): the runbooks are tried against the real thing, Debian's `pgbouncer` package.
PgBouncer runs with its default settings except pool_mode, the listening address and an auth_file holding the
login roles' SCRAM secrets as the server stores them (so PgBouncer logs in to Postgres with them too).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import psycopg

from ... import processes
from . import postgres

MODES = ("transaction", "session")
INSTALL_HINT = ("PgBouncer is not installed: `apt-get install pgbouncer` (Debian/Ubuntu), `brew install pgbouncer` "
                "(macOS), or put pgbouncer on PATH")


def binary() -> str:
    """The pgbouncer executable: on PATH, else Debian's /usr/sbin/pgbouncer (sbin is not on a user's PATH)."""
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else "")
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


def start(folder: Path, port: int, pg_port: int, mode: str, admin_dsn: str, roles: tuple[str, ...],
          settings: dict[str, str] | None = None) -> dict[str, Any]:
    """Start PgBouncer in `mode` on 127.0.0.1:port for every database of the server on pg_port; wait until it
    lets a login role in. `settings` adds [pgbouncer] settings (a test's `ignore_startup_parameters`)."""
    if mode not in MODES:
        raise ValueError(f"unknown pooler mode {mode!r}; valid: {', '.join(MODES)}")
    exe = binary()
    home = folder / "pgbouncer"
    home.mkdir(parents=True, exist_ok=True)
    _write_auth_file(home / "userlist.txt", admin_dsn, roles)
    config = {"listen_addr": "127.0.0.1", "listen_port": str(port), "unix_socket_dir": "",
              "auth_type": "scram-sha-256", "auth_file": str(home / "userlist.txt"), "pool_mode": mode,
              **(settings or {})}
    (home / "pgbouncer.ini").write_text(f"[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\n"
                                        + "".join(f"{k} = {v}\n" for k, v in config.items()))
    owner = postgres.run_as()   # PgBouncer refuses to run as root, as Postgres does
    if owner:
        for path in (home, home / "userlist.txt", home / "pgbouncer.ini"):
            os.chown(path, owner["user"], owner["group"])
    record = processes.spawn([exe, str(home / "pgbouncer.ini")], folder / "logs" / "pgbouncer.log", **owner)
    processes.wait_until(lambda: not processes.port_free(port), record, "PgBouncer")
    return record | {"port": port, "mode": mode, "url": f"127.0.0.1:{port}"}


def _write_auth_file(path: Path, admin_dsn: str, roles: tuple[str, ...]) -> None:
    """userlist.txt: each role's SCRAM secret read from pg_authid (no plain password on disk)."""
    with psycopg.connect(admin_dsn, autocommit=True, application_name="aias-sandbox/control") as conn:
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = ANY(%s)",
                            (list(roles),)).fetchall()
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f'"{name}" "{secret}"\n' for name, secret in rows if secret))


def stop(record: dict[str, Any] | None) -> bool:
    """Stop the recorded PgBouncer; False when it was not running."""
    return processes.stop(record)


def via(dsn: str, pg_port: int, port: int) -> str:
    """dsn with the server's port replaced by PgBouncer's (the sandbox's URLs are all 127.0.0.1:<port>)."""
    return dsn.replace(f"@127.0.0.1:{pg_port}/", f"@127.0.0.1:{port}/")
