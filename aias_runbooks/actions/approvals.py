"""Four-eyes approvals and blast-radius limits for the guarded actions.

A profile's `approvals:` (settings.Environment.requires_approval) says which guarded actions need a second person.
For those, a dry run files a request: the exact plan, its hash, who asked and why, an expiry
(`guarded_actions.approval_ttl_minutes` in params/thresholds.yaml). Someone else approves it
(`aias-runbooks approve ID`, or the console); the apply (`-p approval=ID -p apply=true`) re-plans and goes ahead
only if the request is approved, unexpired, for this action and environment, not applied yet, and the new plan's
hash equals the approved one. Whatever the profile, an apply is refused over the action's blast-radius limits
(`guarded_actions.<action>.max_targets` in one apply, `max_applies_per_hour`).

Storage: one JSON file per request, `<output>/approvals/<id>.json` (output: the report root, where audit.jsonl
lives), replaced atomically; a change of status is a compare-and-swap under an flock of `<output>/approvals/.lock`,
so two approvers or two applies never both win. Every step is an audit.jsonl record carrying `request: <id>`:
`requested`, `approved`, the apply's `started`/`finished`, or `refused` with the reason.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import paths
from ..findings import jsonable
from ..records import append_jsonl, read_jsonl, write_atomic

ID = re.compile(r"apr-[0-9a-f]{12}")
STATUSES = ("pending", "approved", "applied", "expired")
VIA = ("cli", "console")
DEFAULT_TTL_MINUTES = 60
LIMITS_SOURCE = "params/thresholds.yaml guarded_actions"


class ApprovalRefused(Exception):
    """An approval step refused; str(exc) is one line: what is wrong and what is valid."""


@dataclass(frozen=True)
class Request:
    """One approval request, as filed by a dry run and changed by approve and the apply."""

    id: str                 # "apr-" + 12 hex digits
    action: str             # the action's ACTION constant, e.g. "terminate_leaked_sessions"
    runbook: str            # slug of the dry run
    env: str
    incident: str | None
    run_id: str             # the dry run that filed it
    requested_by: str       # the dry run's operator
    reason: str             # why: the blaming finding's code and title, or the run's reason text
    plan: list[dict]        # the exact targets, JSON-safe, identity columns first
    plan_hash: str          # sha256 hex of the canonical JSON of the plan's identity fields
    created_at: str         # ISO UTC
    expires_at: str         # ISO UTC
    status: str             # "pending" | "approved" | "applied" | "expired" (computed on read when past expiry)
    approved_by: str | None = None
    approved_at: str | None = None
    applied_by: str | None = None
    applied_at: str | None = None
    apply_run_id: str | None = None

    @property
    def expired(self) -> bool:
        return self.status == "expired"


@dataclass(frozen=True)
class Gate:
    """What the gate decided: `allowed` False means refused (already audited and said in one line): change nothing.
    `request`: the request filed (dry run) or applied under (apply), else None."""

    allowed: bool
    request: str | None = None
    reason: str = ""


# -- the plan ------------------------------------------------------------------------------------------------------

def plan_hash(plan: Sequence[Mapping[str, Any]], identity: Sequence[str]) -> str:
    """sha256 hex of the canonical JSON (sorted keys, sorted rows) of each target's identity fields: the same
    targets give the same hash in any order; another target, or one that changed identity, another hash."""
    rows = [json.dumps(jsonable({key: row.get(key) for key in identity}), sort_keys=True, separators=(",", ":"),
                       default=str) for row in plan]
    return hashlib.sha256(("[" + ",".join(sorted(rows)) + "]").encode("utf-8")).hexdigest()


def limits(thresholds: Mapping[str, Any], action: str) -> dict[str, Any]:
    """The action's blast-radius limits and the approvals' TTL from the (profile-merged) thresholds:
    {max_targets, max_applies_per_hour (None: unlimited), approval_ttl_minutes}. ValueError (one line) on a bad
    value."""
    section = thresholds.get("guarded_actions") or {}
    own = section.get(action) or {}
    found = {"max_targets": own.get("max_targets"), "max_applies_per_hour": own.get("max_applies_per_hour"),
             "approval_ttl_minutes": section.get("approval_ttl_minutes", DEFAULT_TTL_MINUTES)}
    for key, value in found.items():
        if value is None and key != "approval_ttl_minutes":
            continue
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number_ok or value < 0 or (key == "approval_ttl_minutes" and value <= 0) or (
                key != "approval_ttl_minutes" and value != int(value)):
            where = key if key == "approval_ttl_minutes" else f"{action}.{key}"
            valid = "minutes above 0" if key == "approval_ttl_minutes" else "a whole number, 0 or more"
            raise ValueError(f"{LIMITS_SOURCE}.{where} is {value!r}; valid: {valid} (or the profile's thresholds: "
                             "override)")
    return found


# -- storage -------------------------------------------------------------------------------------------------------

def _folder(output: Path | None) -> Path:
    return Path(output or paths.output_dir()) / "approvals"


@contextmanager
def _locked(output: Path | None) -> Iterator[Path]:
    """The approvals folder, held under an exclusive flock of its .lock for the block: one writer at a time."""
    folder = _folder(output)
    folder.mkdir(parents=True, exist_ok=True, mode=paths.REPORT_MODE)   # plans name other sessions, as reports do
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        os.close(fd)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _from_dict(data: Mapping[str, Any]) -> Request:
    """A Request from its file; status reads "expired" once a pending or approved one is past its expiry."""
    names = {f.name for f in fields(Request)}
    request = Request(**{k: v for k, v in data.items() if k in names})
    if request.status in ("pending", "approved") and datetime.fromisoformat(request.expires_at) <= _now():
        request = replace(request, status="expired")
    return request


def _write(folder: Path, request: Request) -> None:
    write_atomic(folder / f"{request.id}.json", json.dumps(asdict(request), indent=2, allow_nan=False) + "\n")


def load(request_id: str, output: Path | None = None) -> Request:
    """The request with this id; ApprovalRefused (one line) for an id that is malformed, unknown or unreadable."""
    if not isinstance(request_id, str) or not ID.fullmatch(request_id.strip()):
        from ..printable import show
        raise ApprovalRefused(f"approval id {show(str(request_id))} is not valid; valid: apr- and 12 hex digits, as "
                              "the dry run printed it (see `aias-runbooks approvals`)")
    path = _folder(output) / f"{request_id.strip()}.json"
    try:
        return _from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ApprovalRefused(f"no approval request {request_id.strip()} in {path.parent}; see "
                              "`aias-runbooks approvals` for the requests there") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ApprovalRefused(f"approval request {request_id.strip()} cannot be read ({type(exc).__name__}); file a "
                              "new one with a dry run") from None


def requests(output: Path | None = None, status: str | None = None) -> list[Request]:
    """Every readable request under the report root, newest first; only those of `status` when given."""
    if status is not None and status not in STATUSES:
        raise ApprovalRefused(f"status {status!r} is not valid; valid: {', '.join(STATUSES)}")
    found = []
    for path in _folder(output).glob("apr-*.json"):
        try:
            found.append(_from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return [r for r in found if status is None or r.status == status]


def _audit(output: Path | None, request: Request, phase: str, operator: str, **extra: Any) -> None:
    """One audit.jsonl record of a step taken outside a run (approve): who, when, which request and run."""
    append_jsonl(Path(output or paths.output_dir()) / "audit.jsonl", {
        "at": _now().isoformat(timespec="milliseconds"), "action": request.action, "attempt": uuid.uuid4().hex,
        "phase": phase, "operator": operator, "login": getpass.getuser(), "runbook": request.runbook,
        "run_id": request.run_id, "env": request.env, "incident": request.incident, "request": request.id, **extra})


def _same_person(a: str | None, b: str | None) -> bool:
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def approve(request_id: str, approver: str, via: str, output: Path | None = None) -> Request:
    """Approve a pending request as `approver` (via "cli" or "console"), as a compare-and-swap under the lock, and
    audit it (phase "approved"). ApprovalRefused (one line) for an empty or invalid approver name, the requester
    approving their own request, an expired request or one not pending."""
    from ..runner.parameterize import text_problem
    if via not in VIA:
        raise ApprovalRefused(f"via {via!r} is not valid; valid: {', '.join(VIA)}")
    name = (approver or "").strip()
    if not name:
        raise ApprovalRefused("an approval needs the approver's name (--as NAME); it is the audit record's operator")
    if problem := text_problem(name):
        raise ApprovalRefused(f"the approver's name {problem}")
    with _locked(output) as folder:
        request = load(request_id, output)
        if _same_person(name, request.requested_by):
            raise ApprovalRefused(f"{request.id} was requested by {request.requested_by}: the requester cannot "
                                  "approve their own request; someone else must")
        if request.status != "pending":
            raise ApprovalRefused(_not_pending(request))
        request = replace(request, status="approved", approved_by=name, approved_at=_iso(_now()))
        _write(folder, request)
    _audit(output, request, "approved", name, via=via)
    return request


def _not_pending(request: Request) -> str:
    if request.status == "expired":
        return f"{request.id} expired at {request.expires_at}; file a new request with a dry run"
    if request.status == "approved":
        return f"{request.id} is already approved by {request.approved_by} at {request.approved_at}"
    return f"{request.id} was already applied by {request.applied_by} at {request.applied_at}"


def _file(rb: Any, action: str, plan: list[dict], digest: str, requester: str, reason: str) -> tuple[Request, bool]:
    """A pending unexpired request for this action, environment and plan hash, else a new one: (request, new?)."""
    output = paths.output_dir()
    with _locked(output) as folder:
        for old in requests(output, "pending"):
            if (old.action, old.env, old.plan_hash) == (action, rb.env.name, digest):
                return old, False
        ttl = limits(rb.thresholds, action)["approval_ttl_minutes"]
        now = _now()
        request = Request(id=f"apr-{secrets.token_hex(6)}", action=action, runbook=rb.slug, env=rb.env.name,
                          incident=rb.incident, run_id=rb.run_id, requested_by=requester, reason=reason, plan=plan,
                          plan_hash=digest, created_at=_iso(now), expires_at=_iso(now + timedelta(minutes=ttl)),
                          status="pending")
        _write(folder, request)
    return request, True


def _mark_applied(request: Request, rb: Any, operator: str) -> Request:
    """Compare-and-swap approved -> applied under the lock; ApprovalRefused when another apply (or the clock) won."""
    output = paths.output_dir()
    with _locked(output) as folder:
        current = load(request.id, output)
        if current.status != "approved":
            raise ApprovalRefused(_unusable(current))
        current = replace(current, status="applied", applied_by=operator, applied_at=_iso(_now()),
                          apply_run_id=rb.run_id)
        _write(folder, current)
    return current


def _unusable(request: Request) -> str:
    """Why a request that is not approved cannot be applied."""
    if request.status == "pending":
        return (f"{request.id} is not approved yet: someone other than {request.requested_by} must run "
                f"`aias-runbooks approve {request.id}`")
    if request.status == "applied":
        return (f"{request.id} was already applied by {request.applied_by} at {request.applied_at} (run "
                f"{request.apply_run_id}); an approval is good for one apply: file a new request with a dry run")
    return f"{request.id} expired at {request.expires_at}; file a new request with a dry run"


# -- the gate ------------------------------------------------------------------------------------------------------

def gate(rb: Any, action: str, plan_records: list[dict], apply: bool, operator: str, approval: str = "", *,
         identity: Sequence[str], reason: str | None = None) -> Gate:
    """The four-eyes and blast-radius gate every guarded action calls with its plan before it acts.

    Dry run: when the profile requires approval for `action` and the plan is not empty, files a request (or reuses
    a pending one for the same action, environment and plan hash), audits `requested` and prints the id and the
    next step. Apply: with an `approval` id, or when the profile requires one, checks the request (exists, this
    action and environment, approved by someone other than its requester, unexpired, the plan's hash unchanged);
    then the blast-radius limits; then marks the request applied (compare-and-swap) so it serves one apply only.
    A refusal is audited (`refused`, with `request`), said in one line, and returned as Gate(False, ...).
    """
    from . import audit as audit_log
    records = [{**{key: r.get(key) for key in identity}, **r} for r in plan_records]   # identity columns first
    digest = plan_hash(records, identity)
    approval = (approval or "").strip()
    if not apply:
        if not rb.env.requires_approval(action) or not records:
            return Gate(True)
        requester = (operator or "").strip() or getpass.getuser()
        try:
            request, new = _file(rb, action, _redacted(rb, records), digest, requester, reason or _blame(rb))
        except ValueError as exc:      # a bad approval_ttl_minutes: said, and an apply is refused for it too
            print(f"approval request not filed for {action}: {exc}")
            return Gate(True, None, str(exc))
        if new:
            audit_log.append(rb, action, uuid.uuid4().hex, "requested", requester, request=request.id,
                             plan_hash=digest, targets=len(records), expires_at=request.expires_at,
                             reason=request.reason)
        print(f"approval request {request.id} {'filed' if new else 'pending'} for {action} on {len(records)} "
              f"target(s), expires {request.expires_at}: someone other than {request.requested_by} runs "
              f"`aias-runbooks approve {request.id}`, then rerun with -p approval={request.id} -p apply=true")
        return Gate(True, request.id)
    request = None
    try:
        if approval or rb.env.requires_approval(action):
            request = _approved(rb, action, approval, records, digest)
        _within_limits(rb, action, len(records))
        if request is not None:
            request = _mark_applied(request, rb, operator)
    except (ApprovalRefused, ValueError) as exc:
        reason_text = str(exc)
        audit_log.declined(rb, action, operator, audit_log.REFUSED, reason_text,
                           **({"request": approval} if approval else {}))
        return Gate(False, approval or None, reason_text)
    return Gate(True, request.id if request else None)


def _approved(rb: Any, action: str, approval: str, records: list[dict], digest: str) -> Request:
    """The approved request the apply may go ahead under; ApprovalRefused (one line) otherwise."""
    if not approval:
        raise ApprovalRefused(f"{action} needs an approved request under environment '{rb.env.name}' (approvals: "
                              f"{_shown(rb.env.approvals)}): a dry run files one, someone else runs `aias-runbooks "
                              "approve ID`, then rerun with -p approval=ID -p apply=true")
    request = load(approval)
    if request.action != action or request.env != rb.env.name:
        raise ApprovalRefused(f"{request.id} is for {request.action} on environment '{request.env}', not {action} "
                              f"on '{rb.env.name}'; file a request for this one with a dry run")
    if request.status != "approved":
        raise ApprovalRefused(_unusable(request))
    if _same_person(request.approved_by, request.requested_by):
        raise ApprovalRefused(f"{request.id} was approved by its own requester; someone else must approve it")
    if request.plan_hash != digest:
        raise ApprovalRefused(f"the plan changed since it was approved: {len(request.plan)} targets then, "
                              f"{len(records)} now; file a new request (a dry run) for the plan as it is now")
    return request


def _within_limits(rb: Any, action: str, targets: int) -> None:
    """ApprovalRefused (one line, naming the limit and where it is set) over max_targets or max_applies_per_hour."""
    found = limits(rb.thresholds, action)
    where = f"{LIMITS_SOURCE}.{action}"
    if found["max_targets"] is not None and targets > found["max_targets"]:
        raise ApprovalRefused(f"{targets} targets is over the blast-radius limit max_targets={found['max_targets']} "
                              f"for one apply ({where}.max_targets, or the profile's thresholds: override); narrow "
                              "the plan")
    per_hour = found["max_applies_per_hour"]
    if per_hour is not None:
        done = applies_in_last_hour(action, rb.env.name)
        if done >= per_hour:
            raise ApprovalRefused(f"{done} applies of {action} on '{rb.env.name}' in the last hour reach the "
                                  f"blast-radius limit max_applies_per_hour={per_hour} ({where}.max_applies_per_hour, "
                                  "or the profile's thresholds: override); wait, or raise the limit")


def applies_in_last_hour(action: str, env: str, output: Path | None = None) -> int:
    """How many applies of `action` on `env` started in the last hour: its `started` records in audit.jsonl."""
    since = _now() - timedelta(hours=1)
    count = 0
    for record in read_jsonl(Path(output or paths.output_dir()) / "audit.jsonl"):
        if record.get("action") != action or record.get("phase") != "started" or record.get("env") != env:
            continue
        try:
            if datetime.fromisoformat(str(record.get("at"))) >= since:
                count += 1
        except ValueError:
            continue
    return count


def _blame(rb: Any) -> str:
    """Why the action is asked for: the worst finding so far (code and title), else a plain line."""
    rank = {"CRITICAL": 0, "WARNING": 1, "UNKNOWN": 2}
    problems = [f for f in getattr(rb, "findings", []) if str(getattr(f.severity, "value", f.severity)) in rank]
    if not problems:
        return f"a dry run of {rb.slug} planned it"
    worst = min(problems, key=lambda f: rank[str(getattr(f.severity, "value", f.severity))])
    return f"{worst.code}: {worst.title}"


def _redacted(rb: Any, records: list[dict]) -> list[dict]:
    from ..runner.redact import redact_json
    cleaned, _ = redact_json(jsonable(records), rb.secret_values)
    return cleaned


def _shown(value: Any) -> str:
    return ", ".join(value) if isinstance(value, tuple) else str(value)
