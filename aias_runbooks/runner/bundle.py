"""`aias-runbooks bundle`: every report of one incident in one zip for the postmortem, and `--verify` of one.

The zip holds, for each run filed with the incident id (runs.jsonl's `incident`), its whole report folder under
`reports/<report_dir>/`; `runs.jsonl`, the incident's lines of the catalogue; `audit.jsonl`, the guarded actions
those runs attempted (output/audit.jsonl's records of this incident or of these runs: what was changed, by whom,
with what outcome, which a postmortem needs), when there are any; and `manifest.json`: each other file's path,
size and SHA-256, each run's status, parameters and versions (from its verdict.json), the versions across the
bundle (aias-runbooks, Python, papermill, the PostgreSQL server where a run recorded it) and when it was made.

Nothing enters the bundle that the archive does not already hold: reports are redacted when they are filed, and
the audit lines are scanned for key shapes once more. A bundle is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..records import umask
from .archive import Filters, report_folder, runs

MANIFEST = "manifest.json"
FORMAT = "aias-runbooks incident bundle 1"
INTACT, BROKEN = 0, 2   # --verify's exit codes: 2 as CRITICAL, the evidence cannot be trusted


def make_bundle(output_root: Path, incident: str, out: Path | None = None,
                now: datetime | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the incident's bundle; returns its path and manifest. UsageError when the incident has no run or
    `out` exists (never overwritten; without `out` a new name is found under output/bundles/)."""
    from .parameterize import show
    from .request import INCIDENT
    if not INCIDENT.fullmatch(incident):
        raise UsageError(f"--incident {show(incident)} is not an incident id: 1 to 64 letters, digits, '.', '_' "
                         "or '-' (e.g. INC-1234)")
    now = now or datetime.now(timezone.utc)
    found = sorted(runs(output_root, Filters(incident=incident)), key=lambda r: str(r.get("started_at", "")))
    if not found:
        known = sorted({r["incident"] for r in runs(output_root, Filters()) if r.get("incident")})[-10:]
        raise UsageError(f"no run is filed with incident {incident!r} in {output_root / 'runs.jsonl'}; "
                         f"incidents there: {', '.join(known) or 'none'}")
    if out is not None and (out.exists() or out.is_symlink()):
        raise UsageError(f"{out} exists: a bundle is never overwritten; name a new file with --out")
    top = output_root.resolve()
    entries: list[tuple[str, Path | bytes]] = []   # (path in the zip, file on disk or content)
    described, missing = [], []
    for run in found:
        folder = report_folder(top, run)
        if folder is None or not folder.is_dir():
            missing.append(run.get("report_dir"))
            described.append(_describe(run, None, None))
            continue
        inside = f"reports/{folder.relative_to(top).as_posix()}"
        for file in _files(folder):
            entries.append((f"{inside}/{file.relative_to(folder).as_posix()}", file))
        described.append(_describe(run, folder, inside))
    entries.append(("runs.jsonl", "".join(json.dumps(r) + "\n" for r in found).encode()))
    if audit := _audit_lines(output_root, incident, {r.get("run_id") for r in found}):
        entries.append(("audit.jsonl", audit))
    head = {"format": FORMAT, "incident": incident, "created_at": now.isoformat(timespec="seconds"),
            "created_with": {"aias-runbooks": _own_version(), "python": platform.python_version()},
            "versions": _versions(described), "runs": described, "missing_reports": missing}
    target = out if out is not None else _new_name(output_root / "bundles", incident, now)
    return target, _write_new(target, entries, head)


def verify(path: Path) -> tuple[int, str]:
    """(exit code, one line): 0 when every file's SHA-256 is the manifest's and the zip and the manifest list the
    same files; 2 naming the first file that differs otherwise. UsageError when there is no such file."""
    if not path.is_file():
        raise UsageError(f"{path} is not a file: name a bundle made by `aias-runbooks bundle`")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [info.filename for info in zf.infolist()]
            if MANIFEST not in names:
                return BROKEN, f"bundle NOT intact: {path}: it holds no {MANIFEST}"
            try:
                manifest = json.loads(zf.read(MANIFEST))
                listed = {f["path"]: f["sha256"] for f in manifest["files"]}
            except (ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
                return BROKEN, f"bundle NOT intact: {MANIFEST}: unreadable, or not a bundle manifest"
            seen: set[str] = set()
            for name in names:
                if name == MANIFEST:
                    continue
                if name in seen:
                    return BROKEN, f"bundle NOT intact: {name}: in the zip twice"
                seen.add(name)
                if name not in listed:
                    return BROKEN, f"bundle NOT intact: {name}: in the zip but not in the manifest"
                try:
                    digest = _digest(zf, name)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    return BROKEN, f"bundle NOT intact: {name}: cannot be read back ({exc})"
                if digest != listed[name]:
                    return BROKEN, f"bundle NOT intact: {name}: its SHA-256 differs from the manifest's"
            if names.count(MANIFEST) > 1:
                return BROKEN, f"bundle NOT intact: {MANIFEST}: in the zip twice"
            for name in listed:
                if name not in seen:
                    return BROKEN, f"bundle NOT intact: {name}: in the manifest but not in the zip"
    except (zipfile.BadZipFile, OSError) as exc:
        return BROKEN, f"bundle NOT intact: {path}: not a readable zip ({exc})"
    runs_count = len(manifest.get("runs", [])) if isinstance(manifest, dict) else 0
    return INTACT, (f"bundle intact: {len(seen)} file(s) match their SHA-256 in the manifest "
                    f"(incident {manifest.get('incident')}, {runs_count} run(s)): {path}")


def _digest(zf: zipfile.ZipFile, name: str) -> str:
    """SHA-256 of one entry, read in chunks (its CRC is checked at the end, as zipfile does)."""
    sha = hashlib.sha256()
    with zf.open(name) as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _files(folder: Path) -> list[Path]:
    """Every regular file under the report folder, sorted; symlinks are not followed (nothing from outside)."""
    found = []
    for base, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            file = Path(base) / name
            if file.is_file() and not file.is_symlink():
                found.append(file)
    return found


def _describe(run: dict[str, Any], folder: Path | None, inside: str | None) -> dict[str, Any]:
    """One run for the manifest: its catalogue line's facts, and what its verdict.json records."""
    verdict: dict[str, Any] = {}
    if folder is not None:
        with contextlib.suppress(OSError, ValueError):
            verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    prov = verdict.get("provenance") or {}
    servers = sorted({str(f["evidence"]["server_version"]) for f in verdict.get("findings", [])
                      if isinstance(f.get("evidence"), dict) and f["evidence"].get("server_version")})
    return {"run_id": run.get("run_id"), "runbook": run.get("runbook"), "env": run.get("env"),
            "status": verdict.get("status", run.get("status")), "exit_code": run.get("exit_code"),
            "summary": verdict.get("summary", run.get("summary")), "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"), "operator": prov.get("operator"), "git": prov.get("git"),
            "parameters": prov.get("parameters"), "python": prov.get("python"),
            "versions": prov.get("versions"), "postgresql_server": servers or None,
            "report": inside, "redactions": verdict.get("redactions", run.get("redactions"))}


def _versions(described: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each component's versions across the runs (one value when every run agrees)."""
    found: dict[str, set[str]] = {"aias-runbooks": set(), "python": set(), "papermill": set(),
                                  "postgresql_server": set()}
    for run in described:
        versions = run.get("versions") or {}
        for name in ("aias-runbooks", "papermill"):
            if versions.get(name):
                found[name].add(str(versions[name]))
        if run.get("python"):
            found["python"].add(str(run["python"]))
        found["postgresql_server"].update(run.get("postgresql_server") or [])
    return {name: sorted(values) for name, values in found.items()}


def _audit_lines(output_root: Path, incident: str, run_ids: set[Any]) -> bytes:
    """output/audit.jsonl's records of this incident or of its runs, key shapes redacted once more."""
    from .redact import redact_text
    path = output_root / "audit.jsonl"
    if not path.is_file():
        return b""
    kept = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if incident not in line and not any(str(r) in line for r in run_ids):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (record.get("incident") == incident or record.get("run_id") in run_ids):
                kept.append(redact_text(line.rstrip("\n"), [])[0] + "\n")
    return "".join(kept).encode()


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("aias-runbooks")
    except PackageNotFoundError:
        return "not installed"


def _new_name(folder: Path, incident: str, now: datetime) -> Path:
    base = f"{incident}_{now:%Y%m%d-%H%M%S}"
    for n in range(1, 1000):
        candidate = folder / (f"{base}.zip" if n == 1 else f"{base}-{n}.zip")
        if not candidate.exists():
            return candidate
    raise UsageError(f"no free bundle name for {base} under {folder}; name one with --out")


def _write_new(target: Path, entries: list[tuple[str, Path | bytes]], head: dict[str, Any]) -> dict[str, Any]:
    """Write the zip (each file read once, hashed as it is stored, then manifest.json) beside target and link it
    into place: never half a zip under the name, and never over an existing file (a link fails where a file
    appeared meanwhile). Owner and group only: reports are not public. Returns the manifest."""
    folder = target.parent
    if not folder.is_dir():
        if target.parent.name == "bundles":
            folder.mkdir(parents=True, exist_ok=True)
        else:
            raise UsageError(f"{folder} is not a folder: --out must name a file in an existing folder")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        files = []
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, source in entries:
                data = source if isinstance(source, bytes) else source.read_bytes()
                files.append({"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                moment = datetime.fromtimestamp(source.stat().st_mtime) if isinstance(source, Path) else None
                zf.writestr(_entry(name, moment), data)
            manifest = head | {"files": files}
            zf.writestr(_entry(MANIFEST, None), json.dumps(manifest, indent=2) + "\n")
        os.chmod(tmp, 0o640 & ~umask())
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise UsageError(f"{target} exists: a bundle is never overwritten; name a new file with --out") from None
        except OSError:   # a file system without hard links: an exclusive create, then the copy
            try:
                with open(target, "xb") as dst, open(tmp, "rb") as src:
                    shutil.copyfileobj(src, dst)
            except FileExistsError:
                raise UsageError(f"{target} exists: a bundle is never overwritten; name a new file with --out") \
                    from None
            os.chmod(target, 0o640 & ~umask())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return manifest


def _entry(name: str, moment: datetime | None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(moment or datetime.now()).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o640 << 16
    return info
