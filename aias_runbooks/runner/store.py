"""Where reports and their catalogue are kept: a local folder or object storage (`s3://bucket/prefix`), one layout
and one code path for both, through fsspec (s3fs for S3).

A run always executes, and is redacted, in the private local workspace (workspace.py); the archive only ever
receives a complete, scanned report folder (`put_folder`), then its catalogue record (catalog.py). Credentials for
S3 come the standard AWS way (environment, ~/.aws, an instance or pod role; the endpoint from AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL), or from a profile's named secrets `archive_access_key_id` / `archive_secret_access_key`: never
from a file of ours. Every request has a deadline, so an unreachable bucket is one line, not a hung run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import OutputError, UsageError
from ..printable import show
from ..records import write_atomic

SCHEME = "s3://"
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")   # S3's bucket naming rules (the common subset)
PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,255}")
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
ATTEMPTS = 3
SECRET_ROLES = ("archive_access_key_id", "archive_secret_access_key")


@dataclass
class Archive:
    """An archive root: `url` to show people (an absolute folder, or s3://bucket/prefix), `fs` and `root` to reach
    it, `local` the folder itself when it is one."""

    url: str
    fs: Any
    root: str
    local: Path | None = None

    def path(self, rel: str) -> str:
        """The fs path of `rel` (slash-separated, relative to the root)."""
        return f"{self.root}/{rel}" if rel else self.root

    def where(self, rel: str = "") -> str:
        """What to show people for `rel`: a local path, or an s3:// URL."""
        return f"{self.url.rstrip('/')}/{rel}" if rel else self.url

    def read(self, rel: str) -> bytes:
        """One file's bytes; FileNotFoundError when it is not there."""
        return self.fs.cat_file(self.path(rel))

    def read_many(self, rels: Iterable[str]) -> dict[str, bytes]:
        """Several files at once (concurrently on S3), by rel; those missing are left out."""
        wanted = {self.path(rel): rel for rel in rels}
        if not wanted:
            return {}
        found = self.fs.cat(list(wanted), on_error="omit")
        return {wanted[p]: data for p, data in found.items() if p in wanted and isinstance(data, bytes)}

    def write(self, rel: str, data: bytes) -> None:
        """Replace one file whole: a reader sees the old content or the new, never half (an S3 PUT is atomic;
        locally a temporary file is renamed over it)."""
        if self.local is not None:
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
            write_atomic(target, data.decode("utf-8"))
        else:
            self.fs.pipe_file(self.path(rel), data)

    def read_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        """A file's bytes and its version (an S3 ETag; locally inode, size and mtime), for write_if; (None, None)
        when it is not there. The version is read first: a change in between makes write_if refuse, never lose."""
        if self.local is not None:
            try:
                st = os.stat(self.local / rel)
                return (self.local / rel).read_bytes(), _local_version(st)
            except FileNotFoundError:
                return None, None
        etag = self.version(rel)
        try:
            return (self.fs.cat_file(self.path(rel)), etag) if etag is not None else (None, None)
        except FileNotFoundError:
            return None, None

    def version(self, rel: str) -> str | None:
        """A file's version as read_versioned gives it (None: not there), without reading it."""
        if self.local is not None:
            try:
                return _local_version(os.stat(self.local / rel))
            except FileNotFoundError:
                return None
        try:
            return self.fs.info(self.path(rel), refresh=True)["ETag"]
        except FileNotFoundError:
            return None

    def write_if(self, rel: str, data: bytes, version: str | None) -> bool:
        """Replace `rel` only if it is still at `version` (None: only if it does not exist): False when another
        writer got there first (then read it again and merge). S3's conditional writes (If-Match, If-None-Match);
        locally the same compare-and-swap under an flock on `<rel>.lock` held for the write alone."""
        if self.local is not None:
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)
            with open(target.parent / f".{target.name}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    now = _local_version(os.stat(target))
                except FileNotFoundError:
                    now = None
                if now != version:
                    return False
                write_atomic(target, data.decode("utf-8"))
                return True
        bucket, _, key = self.path(rel).partition("/")
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except Exception as exc:  # noqa: BLE001 - s3fs turns 412/409 into OSError(EINVAL); botocore's otherwise
            if _conflict(exc):
                return False
            raise
        return True

    def create(self, rel: str, data: bytes) -> bool:
        """Write `rel` unless it exists: True when this call made it (a run's record: filed once)."""
        return self.write_if(rel, data, None)

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def names(self, rel: str) -> list[str]:
        """The names directly under `rel` (files and folders), sorted; [] when there is none."""
        if self.local is not None:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                return sorted(entry.name for entry in os.scandir(self.local / rel))
            return []
        with contextlib.suppress(FileNotFoundError):
            self.fs.invalidate_cache(self.path(rel))   # another host may have written since: never a stale listing
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path(rel), detail=False))
        return []

    def remove(self, rels: Iterable[str]) -> None:
        """Delete files (missing ones are no error)."""
        for rel in rels:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path(rel))

    def remove_folder(self, rel: str) -> None:
        """Delete a report folder and everything in it (missing: no error)."""
        if self.local is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.local / rel)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel), recursive=True)

    def folder_bytes(self, rel: str) -> int:
        with contextlib.suppress(FileNotFoundError):
            return int(self.fs.du(self.path(rel), total=True))
        return 0

    def put_folder(self, folder: Path, rel: str) -> None:
        """Copy a complete local report folder to `rel` (every file; an earlier partial copy is overwritten)."""
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        self.fs.put([str(p) for p in files], [self.path(f"{rel}/{p.relative_to(folder).as_posix()}") for p in files])

    def check(self, write: bool = True) -> None:
        """OutputError, one line, unless the archive can be read and (with `write`) written to: run before any kernel
        starts. A reader (`reports`, `bundle`) checks only that it can read."""
        if self.local is not None:
            if write:
                check_output_root(self.local)
            return
        probe = self.path(f"catalog/.probe/{os.uname().nodename}-{os.getpid()}")
        try:
            self.fs.ls(self.root.split("/", 1)[0], detail=False)   # the bucket: reachable, exists, may be listed
            if write:
                self.fs.pipe_file(probe, b"")                 # may be written to
                self.fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and fsspec each have their own: one line for all
            raise OutputError(f"archive {self.url} cannot be used: {reason(exc)}; check the bucket's name, the "
                              "endpoint and the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE or the profile's "
                              "archive_* secrets)") from None


def check_output_root(root: Path) -> None:
    """OutputError unless `root` is a writable folder, or could be created as one. Creates nothing."""
    target = root.absolute()
    probe = target
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    name = f"output folder {show(str(root), 200)}"
    if not probe.is_dir():
        where = "is not a folder" if probe == target else f"cannot be created: {show(str(probe), 200)} is not a folder"
        raise OutputError(f"{name} {where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "is not writable" if probe == target else f"cannot be created: {show(str(probe), 200)} is not writable"
        raise OutputError(f"{name} {where}")


def is_remote(location: str | Path | None) -> bool:
    return isinstance(location, str) and location.startswith(SCHEME)


def open_archive(location: str | Path, secrets: dict[str, str] | None = None) -> Archive:
    """The archive at `location`: an s3://bucket/prefix URL, else a local folder (made absolute). `secrets`: the
    profile's archive_access_key_id and archive_secret_access_key, when it names them (else the AWS chain).
    UsageError naming what is valid for a malformed URL."""
    if not is_remote(location):
        folder = Path(location).absolute()
        from fsspec.implementations.local import LocalFileSystem
        return Archive(str(folder), LocalFileSystem(auto_mkdir=True), folder.as_posix(), folder)
    bucket, _, prefix = str(location)[len(SCHEME):].partition("/")
    prefix = prefix.strip("/")
    if not BUCKET.fullmatch(bucket) or (prefix and (not PREFIX.fullmatch(prefix) or ".." in prefix.split("/"))):
        raise UsageError(f"archive {show(str(location))} is not valid; valid: a local folder, or s3://BUCKET/PREFIX "
                         "(a bucket name of 3-63 lower-case letters, digits, '.' or '-'; a prefix of letters, digits, "
                         "'.', '_', '-' and '/')")
    import s3fs
    creds = secrets or {}
    key, secret = creds.get("archive_access_key_id"), creds.get("archive_secret_access_key")
    fs = s3fs.S3FileSystem(   # one per process and credentials (fsspec's instance cache): a client costs ~0.2 s
        key=key, secret=secret, use_listings_cache=False,
        config_kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
                       "retries": {"max_attempts": ATTEMPTS, "mode": "standard"}})
    root = f"{bucket}/{prefix}" if prefix else bucket
    return Archive(f"{SCHEME}{root}", fs, root, None)


def _local_version(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


def _conflict(exc: BaseException) -> bool:
    """Whether a conditional write was refused because another writer got there first (412 PreconditionFailed,
    or 409 ConditionalRequestConflict while another conditional write to the key is in flight)."""
    text = f"{exc} {getattr(exc, '__cause__', '')}"
    return any(code in text for code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")) or (
        isinstance(exc, OSError) and exc.errno == errno.EINVAL)


def archive_secrets(profile: Any) -> dict[str, str]:
    """The profile's archive credentials, when it names them (settings.Environment; revealed only here)."""
    return {role: secret.reveal() for role in SECRET_ROLES if (secret := profile.secret(role)) is not None}


def reason(exc: BaseException) -> str:
    """A storage failure in a few words, whatever library raised it (never a credential: botocore's messages
    name the access key id at most, which is not a secret, and we show only the first line)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"no such bucket ({text})"
    if isinstance(exc, PermissionError):
        return f"access denied ({text})"
    return text[:200]
