"""The platform's database sessions, kept whatever the database does: the application's everyday reads, the
workflow worker and the visitors' refreshes each hold a Session that logs one line on an error (identical ones
rate-limited), backs off and reconnects, never a busy loop, never dies; connect() opens a session as the
application role aias_app (as on Supabase), or as the superuser where only that will do.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import psycopg

# After a database error (its backend terminated, the server restarting or refusing connections) a traffic session
# drops its connection and reconnects after a backoff doubling from the first to the last; an identical error line
# is logged at most once per LOG_REPEAT_S (with how many were not).
BACKOFF_S = (0.2, 5.0)
LOG_REPEAT_S = 60.0
LOG_NAME = "traffic"               # what each log line says it comes from (the worker and the visitors set theirs)


def connect(app: str, autocommit: bool = False, admin: bool = False) -> psycopg.Connection:
    """A session of the application (aias_app), or with admin=True of the superuser."""
    dsn = os.environ["AIAS_SANDBOX_ADMIN_DATABASE_URL" if admin else "AIAS_SANDBOX_APP_DATABASE_URL"]
    return psycopg.connect(dsn, application_name=app, autocommit=autocommit)


class Session:
    """One of the traffic's sessions, kept whatever the database does: run(work, ...) calls work(connection, ...)
    until it completes. On a database error it logs one line (identical ones rate-limited), drops the connection,
    backs off (BACKOFF_S, doubling) and reconnects, running `setup` again; never a busy loop, never dies."""

    def __init__(self, name: str, app: str, setup: list[str], autocommit: bool = False) -> None:
        self.name, self.app, self.setup, self.autocommit = name, app, setup, autocommit
        self.conn: psycopg.Connection | None = None
        self.delay, self.errors, self.failing_since, self.logged = BACKOFF_S[0], 0, 0.0, False

    def connection(self) -> psycopg.Connection:
        if self.conn is None:
            conn = connect(self.app, autocommit=self.autocommit)
            try:
                for sql in self.setup:
                    conn.execute(sql)
                if not self.autocommit:
                    conn.commit()
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn

    def run(self, work, *args):
        while True:
            try:
                result = work(self.connection(), *args)
            except psycopg.Error as exc:
                self._failed(exc)
                continue
            if self.errors:   # the log says it is back if it said it was failing
                if self.logged:
                    _log(f"{self.name} ({self.app}): back, after {self.errors} error(s) in "
                         f"{time.monotonic() - self.failing_since:.1f} s")
                self.delay, self.errors, self.logged = BACKOFF_S[0], 0, False
            return result

    def _failed(self, exc: psycopg.Error) -> None:
        if not self.errors:
            self.failing_since = time.monotonic()
        self.errors += 1
        # the server's message without its CONTEXT (which names a tuple that moves), or the client's, on one line
        detail = exc.diag.message_primary or " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        self.logged |= log_error(f"{self.name} ({self.app}): {type(exc).__name__}: {detail}",
                                  f"; reconnecting in {self.delay:g} s")
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, BACKOFF_S[1])


_log_lock = threading.Lock()
_logged: dict[str, tuple[float, int]] = {}   # message -> (when last written, how many not written since)


def log_error(message: str, suffix: str = "") -> bool:
    """Write message (+ suffix) unless the same message was written less than LOG_REPEAT_S ago; True if written."""
    now = time.monotonic()
    with _log_lock:
        last, skipped = _logged.get(message, (None, 0))
        if last is not None and now - last < LOG_REPEAT_S:
            _logged[message] = (last, skipped + 1)
            return False
        if len(_logged) > 100:   # messages that vary (they should not) must not grow this without bound
            _logged.clear()
        _logged[message] = (now, 0)
    _log(message + suffix + (f" (and {skipped} more like it in the last {LOG_REPEAT_S:g} s)" if skipped else ""))
    return True


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {LOG_NAME}: {line}", file=sys.stderr, flush=True)


