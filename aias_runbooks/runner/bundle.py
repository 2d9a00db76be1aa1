"""`aias-runbooks bundle`: every report of one incident in one zip for the postmortem, and `--verify` of one.

The zip holds, for each run filed with the incident id (its record's `incident`), its whole report folder under
`reports/<report_dir>/`; `runs.jsonl`, the incident's records from the catalogue, a line each; `audit.jsonl`, the
guarded actions those runs attempted (output/audit.jsonl's records of this incident or of these runs: what was
changed, by whom, with what outcome, which a postmortem needs), when there are any; and `manifest.json`: each other
file's path, size and SHA-256, each run's status, parameters and versions (from its verdict.json), the versions
across the bundle (aias-runbooks, Python, papermill, the PostgreSQL server where a run recorded it) and when it was
made.

Nothing enters the bundle that the archive does not already hold: reports are redacted when they are filed, and
the audit lines are scanned for key shapes once more. A bundle is never overwritten.

With AIAS_BUNDLE_KEY set (an operator's key, read from the environment and written nowhere) the bundle is signed:
`manifest.hmac` holds the HMAC-SHA256 of manifest.json's bytes. `--verify` checks every entry name is safe to
extract, every file against its SHA-256, each run's facts in the manifest against the hashed runs.jsonl line and
verdict.json they came from, and, with the key, the HMAC. Unsigned (or without the key) that proves only that the
bundle agrees with itself: anyone can edit a file and write a matching manifest. Only the HMAC proves origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..printable import show
from ..records import umask
from .archive import REPORT_DIR, Filters, report_folder, runs
from .catalog import at
from .store import Archive

MANIFEST = "manifest.json"
SIGNATURE = "manifest.hmac"    # {"algorithm": "HMAC-SHA256", "of": "manifest.json", "hmac": hex}
FORMAT = "aias-runbooks incident bundle 1"
INTACT, BROKEN = 0, 2   # --verify's exit codes: 2 as CRITICAL, the evidence cannot be trusted
KEY_VAR, MIN_KEY = "AIAS_BUNDLE_KEY", 16
UNSIGNED = "proves only internal consistency, not origin"
FACTS = ("run_id", "status", "exit_code", "summary", "report")   # a run's facts verify names first when they differ
_DRIVE = re.compile(r"[A-Za-z]:")


def bundle_key() -> bytes | None:
    """The operator's signing key from AIAS_BUNDLE_KEY (None when unset or empty); UsageError when it is too short
    to be a key. Never printed, never written: only the HMACs made with it are."""
    key = os.environ.get(KEY_VAR, "")
    if not key:
        return None
    if len(key.encode()) < MIN_KEY:
        raise UsageError(f"{KEY_VAR} is too short to sign with: at least {MIN_KEY} bytes, e.g. the output of "
                         "`openssl rand -hex 32`; unset it to make or check bundles unsigned")
    return key.encode()


def make_bundle(where: Archive | Path, incident: str, out: Path | None = None, now: datetime | None = None,
                key: bytes | None = None, local: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the incident's bundle, signed when `key` is given; returns its path and manifest. UsageError when the
    incident has no run or `out` exists (never overwritten; without `out` a new name is found under
    <local>/bundles/). `where`: the archive (a folder or an S3 prefix); `local`: this host's report root, which
    holds audit.jsonl and the bundles (default: the archive, when it is a folder)."""
    from .request import INCIDENT
    if not INCIDENT.fullmatch(incident):
        raise UsageError(f"--incident {show(incident)} is not an incident id: 1 to 64 letters, digits, '.', '_' "
                         "or '-' (e.g. INC-1234)")
    now = now or datetime.now(timezone.utc)
    archive = at(where)
    output_root = local or archive.local or Path.cwd()
    found = sorted(runs(archive, Filters(incident=incident)), key=lambda r: str(r.get("started_at", "")))
    if not found:
        known = sorted({r["incident"] for r in runs(archive, Filters()) if r.get("incident")})[-10:]
        raise UsageError(f"no run is filed with incident {incident!r} in {archive.where()}; "
                         f"incidents there: {', '.join(known) or 'none'}")
    if out is not None and (out.exists() or out.is_symlink()):
        raise UsageError(f"{out} exists: a bundle is never overwritten; name a new file with --out")
    entries: list[tuple[str, Path | bytes]] = []   # (path in the zip, file on disk or content)
    described, missing, taken = [], [], set()
    for run in found:
        rel = report_folder(archive, run)
        files = _report_files(archive, rel) if rel is not None else {}
        if not files:
            missing.append(run.get("report_dir"))
            described.append(_describe(run, None, None))
            continue
        inside = f"reports/{rel}"
        if inside not in taken:        # two records naming one folder: its files once
            taken.add(inside)
            entries += [(f"{inside}/{name}", file) for name, file in files.items()]
        verdict = files.get("verdict.json")
        described.append(_describe(run, _verdict(verdict.read_bytes() if isinstance(verdict, Path) else
                                                 verdict or b""), inside))
    entries.append(("runs.jsonl", "".join(json.dumps(r) + "\n" for r in found).encode()))
    if audit := _audit_lines(output_root, incident, {r.get("run_id") for r in found}):
        entries.append(("audit.jsonl", audit))
    head = {"format": FORMAT, "incident": incident, "created_at": now.isoformat(timespec="seconds"),
            "created_with": {"aias-runbooks": _own_version(), "python": platform.python_version()},
            "versions": _versions(described), "runs": described, "missing_reports": missing}
    target = out if out is not None else _new_name(output_root / "bundles", incident, now)
    return target, _write_new(target, entries, head, key)


def verify(path: Path, key: bytes | None = None) -> tuple[int, str]:
    """(exit code, one line): 0 when the bundle is intact, 2 naming the first thing wrong; UsageError when there is
    no such file. Intact: every entry name is safe to extract (relative, no '..', '.', empty part, backslash or
    control character, no symbolic link, no two names one file system would merge) and in the zip once; the zip
    and the manifest list the same files, each with its SHA-256; each run's facts in the manifest are what its
    hashed runs.jsonl line and verdict.json say; and, with `key`, manifest.hmac is the manifest's HMAC-SHA256
    under it (an unsigned bundle then fails: its origin cannot be shown). Without a key, or unsigned, the line
    says that this proves only internal consistency, not origin."""
    if not path.is_file():
        raise UsageError(f"{path} is not a file: name a bundle made by `aias-runbooks bundle`")
    try:
        with zipfile.ZipFile(path) as zf:
            problem, manifest, signed = _check(zf, path, key)
    except (zipfile.BadZipFile, OSError) as exc:
        return BROKEN, f"bundle NOT intact: {path}: not a readable zip ({exc})"
    if problem:
        return BROKEN, problem
    facts = (f"{len(manifest['files'])} file(s) match their SHA-256 in the manifest and its runs their verdicts "
             f"(incident {_value(manifest.get('incident'))}, {len(manifest['runs'])} run(s)): {path}")
    if key is not None:
        return INTACT, f"bundle intact and signed: manifest.json's HMAC-SHA256 matches {KEY_VAR}; {facts}"
    if signed:
        return INTACT, f"bundle intact; signed, but {KEY_VAR} is not set so not checked: {UNSIGNED}; {facts}"
    return INTACT, f"bundle intact, unsigned: {UNSIGNED}; {facts}"


def _check(zf: zipfile.ZipFile, path: Path, key: bytes | None) -> tuple[str | None, dict[str, Any], bool]:
    """(the first problem as verify's line or None, the manifest, whether the bundle is signed)."""
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if problem := _names_problem(infos):
        return problem, {}, False
    if MANIFEST not in names:
        return f"bundle NOT intact: {path}: it holds no {MANIFEST}", {}, False
    try:
        raw = zf.read(MANIFEST)
        manifest = json.loads(raw)
        listed = {f["path"]: f["sha256"] for f in manifest["files"]}
        if len(listed) != len(manifest["files"]) or not isinstance(manifest["runs"], list):
            raise ValueError("a file listed twice")
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return f"bundle NOT intact: {MANIFEST}: unreadable, or not a bundle manifest", {}, False
    signed = SIGNATURE in names
    if key is not None and (problem := _signature_problem(zf, raw, key, signed)):
        return problem, manifest, signed
    for name in listed:
        if (why := _unsafe(name)) or name in (MANIFEST, SIGNATURE):
            return f"bundle NOT intact: {MANIFEST}: lists {_shown(name)}, an unsafe entry name ({why or 'reserved'})", \
                manifest, signed
    for name in names:
        if name in (MANIFEST, SIGNATURE):
            continue
        if name not in listed:
            return f"bundle NOT intact: {_shown(name)}: in the zip but not in the manifest", manifest, signed
        try:
            digest = _digest(zf, name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            return f"bundle NOT intact: {_shown(name)}: cannot be read back ({exc})", manifest, signed
        if digest != listed[name]:
            return f"bundle NOT intact: {_shown(name)}: its SHA-256 differs from the manifest's", manifest, signed
    for name in listed:
        if name not in names:
            return f"bundle NOT intact: {_shown(name)}: in the manifest but not in the zip", manifest, signed
    return _facts_problem(zf, manifest, set(names)), manifest, signed


def _unsafe(name: str) -> str | None:
    """Why an entry name would be extracted somewhere else than under the folder it is extracted to, or None."""
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path"
    if "\\" in name:
        return "a backslash, a folder separator on Windows"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' part, which climbs out of the folder"
    if "" in parts or "." in parts:
        return "an empty or '.' part"
    return None


def _names_problem(infos: list[zipfile.ZipInfo]) -> str | None:
    """The first entry whose name is unsafe, is a symbolic link, or is in the zip twice (also as a file system
    that ignores letter case or Unicode normalization would see it)."""
    seen: dict[str, str] = {}
    for info in infos:
        name = info.filename
        if why := _unsafe(name):
            return f"bundle NOT intact: {_shown(name)}: unsafe entry name ({why})"
        if stat.S_ISLNK(info.external_attr >> 16):
            return f"bundle NOT intact: {_shown(name)}: unsafe entry name (a symbolic link)"
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in seen:
            same = "" if seen[folded] == name else f" (as {_shown(seen[folded])}, letter case aside)"
            return f"bundle NOT intact: {_shown(name)}: in the zip twice{same}"
        seen[folded] = name
    return None


def _signature_problem(zf: zipfile.ZipFile, manifest: bytes, key: bytes, signed: bool) -> str | None:
    """None when manifest.hmac holds the manifest's HMAC-SHA256 under key."""
    if not signed:
        return (f"bundle NOT verified: unsigned (no {SIGNATURE}) while {KEY_VAR} is set: its origin cannot be shown "
                "(made without the key, or its signature removed)")
    try:
        claimed = json.loads(zf.read(SIGNATURE))["hmac"]
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return f"bundle NOT intact: {SIGNATURE}: unreadable"
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, _hmac(key, manifest)):
        return (f"bundle NOT intact: {MANIFEST}: its HMAC-SHA256 does not match {KEY_VAR} (changed after it was "
                "signed, or signed with another key)")
    return None


def _facts_problem(zf: zipfile.ZipFile, manifest: dict[str, Any], names: set[str]) -> str | None:
    """The first run whose facts in the manifest are not what its hashed runs.jsonl line and verdict.json say."""
    try:
        lines = [json.loads(line) for line in zf.read("runs.jsonl").decode().splitlines() if line.strip()]
    except (KeyError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return "bundle NOT intact: runs.jsonl: missing or unreadable"
    listed = manifest["runs"]
    if len(lines) != len(listed):
        return f"bundle NOT intact: {MANIFEST}: lists {len(listed)} run(s), runs.jsonl holds {len(lines)}"
    reports = {"/".join(n.split("/")[:3]) for n in names if n.startswith("reports/")}
    described, missing = [], []
    for line, claimed in zip(lines, listed, strict=True):
        if not isinstance(line, dict) or not isinstance(claimed, dict):
            return "bundle NOT intact: runs.jsonl or the manifest's runs: an entry is not a run"
        run = _shown(str(line.get("run_id")))
        if line.get("incident") != manifest.get("incident"):
            return f"bundle NOT intact: runs.jsonl: run {run} is not of incident {_value(manifest.get('incident'))}"
        rel = line.get("report_dir")
        inside = f"reports/{rel}" if isinstance(rel, str) and REPORT_DIR.fullmatch(rel) else None
        verdict: dict[str, Any] = {}
        if inside in reports:
            if f"{inside}/verdict.json" in names:
                verdict = _verdict(zf.read(f"{inside}/verdict.json"))
            if problem := _disagrees(line, verdict, f"{inside}/verdict.json"):
                return f"bundle NOT intact: run {run}: {problem}"
        elif claimed.get("report"):
            return (f"bundle NOT intact: run {run}: the manifest names its report {_value(claimed['report'])} but "
                    "the bundle holds no file of it")
        else:
            inside = None
            missing.append(rel)
        truth = json.loads(json.dumps(_describe(line, verdict, inside)))
        for field in [*FACTS, *sorted((truth.keys() | claimed.keys()) - set(FACTS))]:
            if truth.get(field) != claimed.get(field):
                return (f"bundle NOT intact: run {run}: the manifest's {field} is {_value(claimed.get(field))}, its "
                        f"hashed runs.jsonl line and verdict.json say {_value(truth.get(field))}")
        described.append(truth)
    if manifest.get("missing_reports") != missing:
        return f"bundle NOT intact: {MANIFEST}: missing_reports is not what runs.jsonl and the reports say"
    if manifest.get("versions") != json.loads(json.dumps(_versions(described))):
        return f"bundle NOT intact: {MANIFEST}: versions are not what the runs' verdicts say"
    return None


def _disagrees(line: dict[str, Any], verdict: dict[str, Any], where: str) -> str | None:
    """Where a run's verdict.json and its catalogue line (both hashed) tell different stories, or None."""
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    for field, said in (("run_id", verdict.get("run_id", prov.get("run_id"))), ("status", verdict.get("status")),
                        ("exit_code", verdict.get("exit_code"))):
        if said is not None and said != line.get(field):
            return f"runs.jsonl says {field} {_value(line.get(field))}, {_shown(where)} says {_value(said)}"
    return None


def _shown(text: str, limit: int = 120) -> str:
    """An entry name from the bundle on verify's one line: non-printable characters escaped, unquoted."""
    return show(text, limit)[1:-1]


def _value(value: Any) -> str:
    """A value from the bundle for verify's line: a string quoted and printable, anything else as JSON, short."""
    if isinstance(value, str):
        return f"'{_shown(value, 80)}'"
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:80] + "..."


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _verdict(data: bytes) -> dict[str, Any]:
    """A verdict.json's content, {} when it is not a JSON object."""
    try:
        verdict = json.loads(data)
    except ValueError:
        return {}
    return verdict if isinstance(verdict, dict) else {}


def _digest(zf: zipfile.ZipFile, name: str) -> str:
    """SHA-256 of one entry, read in chunks (its CRC is checked at the end, as zipfile does)."""
    sha = hashlib.sha256()
    with zf.open(name) as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _report_files(archive: Archive, rel: str) -> dict[str, Path | bytes]:
    """A report folder's files by their path inside it, sorted: files on disk in a local archive, their bytes read
    from object storage (none from outside the folder either way)."""
    if archive.local is not None:
        folder = archive.local / rel
        return {f.relative_to(folder).as_posix(): f for f in _files(folder)} if folder.is_dir() else {}
    base = archive.path(rel)
    with contextlib.suppress(FileNotFoundError):
        paths = sorted(p for p in archive.fs.find(base) if p.startswith(base + "/"))
        data = archive.read_many(p[len(archive.root) + 1:] for p in paths)
        return {p[len(base) + 1:]: data[p[len(archive.root) + 1:]] for p in paths if p[len(archive.root) + 1:] in data}
    return {}


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


def _describe(run: dict[str, Any], verdict: dict[str, Any] | None, inside: str | None) -> dict[str, Any]:
    """One run for the manifest: its catalogue line's facts, and what its verdict.json records. verify computes
    it again from the bundle's own runs.jsonl and verdict.json files to check the manifest's."""
    verdict = verdict or {}
    prov = verdict.get("provenance") if isinstance(verdict.get("provenance"), dict) else {}
    findings = verdict.get("findings") if isinstance(verdict.get("findings"), list) else []
    servers = sorted({str(f["evidence"]["server_version"]) for f in findings
                      if isinstance(f, dict) and isinstance(f.get("evidence"), dict)
                      and f["evidence"].get("server_version")})
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
        versions = run.get("versions") if isinstance(run.get("versions"), dict) else {}
        for name in ("aias-runbooks", "papermill"):
            if versions.get(name):
                found[name].add(str(versions[name]))
        if run.get("python"):
            found["python"].add(str(run["python"]))
        found["postgresql_server"].update(run.get("postgresql_server") or [])
    return {name: sorted(values) for name, values in found.items()}


def _audit_lines(output_root: Path, incident: str, run_ids: set[Any]) -> bytes:
    """output/audit.jsonl's records of this incident or of its runs, redacted once more: key shapes, and the
    secret values in use of the profile each record names (a record written before audit records were redacted
    when written still leaves no secret in a bundle)."""
    from .redact import redact_text
    path = output_root / "audit.jsonl"
    if not path.is_file():
        return b""
    kept, secrets = [], {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if incident not in line and not any(str(r) in line for r in run_ids):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (record.get("incident") == incident or record.get("run_id") in run_ids):
                env = str(record.get("env"))
                if env not in secrets:
                    secrets[env] = _profile_secrets(env)
                kept.append(redact_text(line.rstrip("\n"), secrets[env])[0] + "\n")
    return "".join(kept).encode()


def _profile_secrets(env: str) -> list[str]:
    """The secret values in use of profile `env` on this host; none when no profile of that name loads."""
    import yaml

    from ..settings import load_environment
    try:
        profile = load_environment(env)
    except (UsageError, OSError, ValueError, yaml.YAMLError):
        return []
    return [s.reveal() for s in profile.secrets().values()]


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


def _write_new(target: Path, entries: list[tuple[str, Path | bytes]], head: dict[str, Any],
               key: bytes | None = None) -> dict[str, Any]:
    """Write the zip (each file read once, hashed as it is stored, then manifest.json and, with key, its HMAC)
    beside target and link it into place: never half a zip under the name, and never over an existing file (a link
    fails where a file appeared meanwhile). Owner and group only: reports are not public. Returns the manifest."""
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
            raw = (json.dumps(manifest, indent=2) + "\n").encode()
            zf.writestr(_entry(MANIFEST, None), raw)
            if key is not None:
                signature = {"algorithm": "HMAC-SHA256", "of": MANIFEST, "hmac": _hmac(key, raw)}
                zf.writestr(_entry(SIGNATURE, None), json.dumps(signature, indent=2) + "\n")
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
