"""Files other processes read while we write them: append-only JSON lines (audit.jsonl) under a
lock, and whole files (state.json, index.html, verdict.json) replaced atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line under an exclusive lock, so concurrent writers never interleave lines.

    Keys keep their order (a ranking stays ranked); a missing value (NaN, NA, NaT) is null, never NaN. A line
    that cannot be written whole (a full disk) is cut off again and the OSError raised: no torn line is left
    for the next line to be glued onto.
    """
    from .findings import jsonable
    data = (json.dumps(jsonable(record), allow_nan=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every parseable line; a torn or corrupt line is skipped, not fatal."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace path's content in one step: readers see the old file or the new one, never half of it.

    The temporary file is unique, so concurrent writers (two scheduled runs) never trip over each other. The
    file keeps its mode; a new one gets `mode`, else what the umask gives a plain write (mkstemp's is 0600).
    """
    if path.exists():
        mode = path.stat().st_mode & 0o777
    elif mode is None:
        mode = 0o666 & ~umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    current = os.umask(0o022)
    os.umask(current)
    return current
