"""A run's private working folder: output/.work/<run id>/, owner-only while the run lasts.

papermill writes the notebook there through a handler that redacts every save before it reaches disk; the
kernel's connection file and the findings journal live there too. When the run ends its scanned report is
moved into the archive and the folder is removed. If the runner itself died (SIGKILL, power loss), the
folder's lock is free: the next run finishes that report (see execute.finish_orphans).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import OutputError
from ..records import write_atomic
from .redact import redact_notebook_text, secret_values

WORK = ".work"
SCHEME = "aias-private://"
REDACTIONS = "redactions"


@dataclass
class Workspace:
    """The private folder of one run, locked by the runner for as long as it lives."""

    path: Path
    _lock: int | None = None

    @property
    def notebook(self) -> Path:
        return self.path / "notebook.ipynb"

    @property
    def report(self) -> Path:
        """The report as it is staged: files a notebook writes here while it runs (AIAS_REPORT_FILES, as
        database-inspect's CSV and JSON) are scanned for secrets and filed with the notebook, HTML and verdict."""
        return self.path / "report"

    @property
    def journal(self) -> Path:
        """Findings as the kernel records them, one JSON line each: they survive any way the run ends."""
        return self.path / "findings.jsonl"

    @property
    def log(self) -> Path:
        return self.path / "kernel.log"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @property
    def filing(self) -> Path:
        """The run's catalogue record, written just before its report is moved into the archive: a workspace
        holding it is a filing cut short, which the next run completes (execute.finish_orphans) and never
        files a second time."""
        return self.path / "filing.json"

    def meta(self) -> dict[str, Any]:
        return json.loads(self.meta_path.read_text(encoding="utf-8"))

    def findings(self) -> list[dict[str, Any]] | None:
        """The journal's findings, or None when the kernel never opened it."""
        if not self.journal.is_file():
            return None
        lines = self.journal.read_text(encoding="utf-8", errors="replace").splitlines()
        found = []
        for line in lines:
            with suppress(json.JSONDecodeError):
                found.append(json.loads(line))
        return found

    def redactions(self) -> int:
        """Secrets redacted from the latest save of the notebook, before it reached the disk."""
        try:
            return int((self.path / REDACTIONS).read_text())
        except (OSError, ValueError):
            return 0

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def remove(self) -> None:
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)


def create(root: Path, run_id: str, meta: dict[str, Any]) -> Workspace:
    """output/.work/<run_id>/ (0700), locked by this process; OutputError when the archive cannot be written.

    It is made as a hidden .<run_id>.new, locked and given its meta there, then renamed into place: a run
    starting beside it (run-due's entries, serve's runs) files the orphans it finds, and once took a folder made
    but not yet locked for one, removed it and failed the run ("cannot write reports: resource temporarily
    unavailable"). The lock is on the open file, so it holds across the rename."""
    try:
        root.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
        base = root / WORK
        base.mkdir(exist_ok=True, mode=0o700)
        path, making = base / run_id, base / f".{run_id}.new"
        making.mkdir(mode=0o700)
        making.chmod(0o700)
        lock = os.open(making / "run.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        write_atomic(Workspace(making).meta_path, json.dumps(meta, default=str))
        if path.exists():
            raise FileExistsError(17, "a run with this id is already there", str(path))
        making.rename(path)
    except OSError as exc:
        raise OutputError(f"cannot write reports under {root}: {exc.strerror or exc}") from None
    return Workspace(path, _lock=lock)


def orphans(root: Path) -> Iterator[Workspace]:
    """Working folders whose runner is gone (their lock is free), each locked by us while yielded. A folder still
    being made (.<run_id>.new) is never one; such a folder a killed runner left is removed after STALE_NEW_S."""
    base = root / WORK
    if not base.is_dir():
        return
    for path in sorted(p for p in base.iterdir() if p.is_dir()):
        if path.name.startswith("."):
            _remove_if_stale(path)
            continue
        try:
            fd = os.open(path / "run.lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)   # a live run holds it
            continue
        yield Workspace(path, _lock=fd)


STALE_NEW_S = 3600


def _remove_if_stale(path: Path) -> None:
    """A .<run_id>.new folder over an hour old: its runner was killed in the milliseconds of making it."""
    with suppress(OSError):
        if time.time() - path.stat().st_mtime > STALE_NEW_S:
            shutil.rmtree(path, ignore_errors=True)


class RedactingWriter:
    """A papermill I/O handler: every notebook save is redacted, then replaced atomically.

    papermill saves the whole notebook as each cell starts and again as it ends; redacting and writing it
    every time cost a short runbook a tenth of its run. A save within SAVE_EVERY_S of the last one tried is
    held, and written by a timer when that time is up (a cell that hangs after printing still shows it), by a
    later save, or by flush(), which the runner calls however the run ends.

    A save that cannot be written (a full disk) never raises into papermill or the timer: `failure` holds its
    error until a later save is written, so once flushed it says whether the notebook on disk is the last one
    (None) or as last saved before the failure; the runner reports that, in the verdict and on stderr.
    """

    SAVE_EVERY_S = 0.5

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = secret_values(secrets)
        self.held: tuple[str, str] | None = None
        self.written_at = 0.0
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()
        self.failure: OSError | None = None

    def write(self, buf: str, path: str) -> None:
        with self.lock:
            self.held = (buf, path)
            wait = self.SAVE_EVERY_S - (time.monotonic() - self.written_at)
            if wait <= 0:
                self._write_held()
            elif self.timer is None:
                self.timer = threading.Timer(wait, self._on_time)
                self.timer.daemon = True
                self.timer.start()

    def flush(self) -> None:
        """Write the held save, if any, now."""
        with self.lock:
            self._write_held()

    def _on_time(self) -> None:
        self.flush()

    def _write_held(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.held is None:
            return
        (buf, path), self.held = self.held, None
        text, count = redact_notebook_text(buf, self.secrets)
        target = Path(path.removeprefix(SCHEME))
        self.written_at = time.monotonic()   # a failed save is retried as a later one would be: not at once
        try:
            write_atomic(target, text, mode=0o600)
            write_atomic(target.parent / REDACTIONS, str(count), mode=0o600)   # of the latest save, not a sum
        except OSError as exc:
            self.failure = exc
            return
        self.failure = None

    def read(self, path: str) -> str:
        return Path(path.removeprefix(SCHEME)).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [SCHEME + str(p) for p in Path(path.removeprefix(SCHEME)).iterdir()]

    def pretty_path(self, path: str) -> str:
        return path.removeprefix(SCHEME)


def private_target(space: Workspace, secrets: Iterable[str]) -> tuple[str, RedactingWriter]:
    """The output path to hand papermill, and the writer through which its saves land redacted in the
    workspace (flush it when papermill returns, or raises)."""
    from papermill.iorw import papermill_io
    prefix = f"{SCHEME}{space.path}/"
    writer = RedactingWriter(secrets)
    papermill_io.register(prefix, writer)
    return prefix + space.notebook.name, writer
