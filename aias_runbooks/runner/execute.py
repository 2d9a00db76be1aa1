"""Run one runbook: validate, execute with papermill, then write, scan and catalogue its report."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import OutputError
from ..findings import Verdict
from ..records import write_atomic
from ..settings import Environment, load_environment
from . import kernel, store, workspace
from .parameterize import ENV_PARAM
from .redact import redact_folder, redact_text, secret_values
from .request import INCIDENT, RunRequest, prepare  # noqa: F401 - checked in request.py, re-exported
from .store import Archive, archive_secrets, open_archive


@dataclass
class RunResult:
    where: str                   # the report folder as people reach it: a local path, or an s3:// URL
    verdict: Verdict
    redactions: int
    record: dict[str, Any]
    filed_verdict: dict[str, Any]   # verdict.json as filed (redacted)
    interrupted: bool = False
    problem: str | None = None   # what went wrong filing it (a full disk), for one line on stderr

    @property
    def exit_code(self) -> int:
        return self.verdict.status.exit_code


def execute(request: RunRequest, cell_timeout: int = 300, progress: bool | None = None) -> RunResult:
    """Run the notebook in a private workspace, then archive its scanned report under request.output.

    A failed or interrupted run (SIGTERM, Ctrl-C) still leaves its partial notebook and every finding recorded
    before it stopped; a run whose runner was killed outright is filed by the next run. A notebook whose last
    save could not be written (a full disk) is filed as last saved, with RUNBOOK_ERROR saying why, and
    result.problem says so too. OutputError when the archive cannot be written.
    """
    root = request.output   # absolute (prepare): the kernel, and papermill while it runs, work in notebooks/
    if (root / "runs.jsonl").is_file():   # an archive from before records: its runs become records, once
        from .catalog import upgrade
        upgrade(root)
    finish_orphans(root)
    slug, env = request.info.slug, request.profile.name
    started = datetime.now(timezone.utc)
    run_id = given_run_id() or f"{started:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"   # UTC; fits application_name
    effective = {n: p.default for n, p in request.info.parameters.items()} | request.parameters | {ENV_PARAM: env}
    space = workspace.create(root, run_id, {
        "run_id": run_id, "runbook": slug, "env": env, "incident": request.incident, "operator": request.operator,
        "started_at": started.isoformat(), "parameters": effective, "input": str(request.info.path),
        "archive": request.archive, "entry": request.entry})
    secrets_in_use = _secrets(request.profile)
    error = None
    logging.getLogger("papermill").setLevel(logging.WARNING)
    with stop_signals() as stopped:
        with _kernel_env(AIAS_RUN_ID=run_id, AIAS_INCIDENT=request.incident, AIAS_OUTPUT_DIR=str(root),
                         AIAS_ARCHIVE=request.archive,
                         AIAS_FINDINGS_JOURNAL=str(space.journal), AIAS_CELL_TIMEOUT_S=str(cell_timeout),
                         AIAS_REPORT_FILES=str(space.report)), \
                kernel.config(space) as config, \
                _runner_log(space.log):
            km, writer = None, None
            try:
                km = kernel.start(config, request.info.path)   # it boots while the runner gets ready
                import papermill
                _ready_to_file()
                target, writer = workspace.private_target(space, secrets_in_use)
                papermill.execute_notebook(
                    str(request.info.path), target, km=km,
                    parameters=request.parameters | {ENV_PARAM: env}, kernel_name=kernel.KERNEL_NAME,
                    progress_bar=sys.stderr.isatty() if progress is None else progress, log_output=False,
                    execution_timeout=cell_timeout, cwd=str(request.info.path.parent))
            except Exception as exc:  # the run is reported as RUNBOOK_ERROR, never lost
                error = _describe(exc)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a scheduler's timeout: still reported
                error = INTERRUPTED
            finally:
                stopped.shield()   # a first stop signal from here on is noted: the run is filed all the same
                writer and writer.flush()
                kernel.stop(km)
        unsaved = _unsaved(root, writer.failure) if writer and writer.failure else None
        result = finish(root, space, secrets_in_use, "; ".join(filter(None, [unsaved, error])) or None)
    result.interrupted = stopped()
    if unsaved:
        result.problem = "; ".join(filter(None, [unsaved, result.problem]))
    return result


RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
GIVEN_RUN_ID = "AIAS_NEW_RUN_ID"


def given_run_id() -> str | None:
    """The run id a caller chose (serve names a run in its reply before the run starts), taken from
    AIAS_NEW_RUN_ID once and removed, so the kernel and anything it starts never inherit it; None when unset or
    not an id as execute() makes them (YYYYmmdd-HHMMSS-xxxx)."""
    given = os.environ.pop(GIVEN_RUN_ID, None)
    return given if given and RUN_ID.fullmatch(given) else None


def _unsaved(root: Path, failure: OSError) -> str:
    """What a notebook save that failed (and none written after it) means for the run, in one line."""
    return (f"the notebook could not be saved under {root}: {failure.strerror or failure}; its report holds it as "
            "last saved")


_runs_filed = 0   # runs this process got ready to file


def _ready_to_file() -> None:
    """What filing the run needs and can have now, while the kernel boots on the other core, rather than
    after the last cell: the report's modules, the index template compiled, the versions that ran."""
    global _runs_filed
    from . import catalog, report  # jinja2 and mistune: not needed to launch the kernel
    if _runs_filed:   # read again for each further run (demo files several); a process's first run may find them
        report.installed.cache_clear()   # read when it started (a standby: the code it loaded, before the request)
    _runs_filed += 1
    report.installed()
    catalog.index_template()
    gc.freeze()   # what is loaded by now lives as long as the process: the collection after the run skips it


INTERRUPTED = "interrupted before the runbook finished (SIGTERM, SIGINT or SIGHUP)"
ORPHANED = "the runner stopped before the run finished (killed, or the machine went down); the next run filed this"


def finish(root: Path, space: workspace.Workspace, secrets_in_use: list[str], error: str | None,
           orphaned: bool = False) -> RunResult:
    """Write, scan and move the report into the archive, catalogue it and remove the workspace.

    On a write failure (disk full) the workspace is kept for the next run to finish, and OutputError says so.
    An orphan (its runner died) whose notebook reached its verdict is filed as it ended, else as stopped. The
    catalogue record is kept in the workspace before the report is moved, so a filing cut short after that is
    completed by the next run, never made twice (_resume).
    """
    meta = space.meta()
    slug, env, run_id = meta["runbook"], meta["env"], meta["run_id"]
    error, quoted = redact_text(error, secret_values(secrets_in_use)) if error else (None, 0)
    error = error and error[:500]   # cut after redaction, so no part of a secret survives the cut
    started = datetime.fromisoformat(meta["started_at"])
    import nbformat  # here, not at the top: the run's kernel is started before the runner imports it

    from .report import displays_verdict, provenance, read_verdict, write_report
    try:
        source = space.notebook if space.notebook.is_file() else Path(meta["input"])
        nb = nbformat.read(source, as_version=4)
        if orphaned and not displays_verdict(nb):
            error = ORPHANED
        verdict = read_verdict(nb, slug, env, run_id, error, space.findings())
        prov = provenance(run_id, slug, env, meta["incident"], meta["operator"], started,
                          datetime.now(timezone.utc), meta["parameters"])
        staged = space.report   # may hold files the notebook wrote (AIAS_REPORT_FILES): scanned and filed with it
        staged.mkdir(mode=paths.REPORT_MODE, exist_ok=True)
        write_report(staged, nb, verdict, prov)
        redactions = _scan(staged, secrets_in_use, space.redactions() + quoted)
        archive = _archive(root, meta)
        rel = _report_dir(archive, started, slug, env, meta["incident"], run_id)
        record = {"run_id": run_id, "runbook": slug, "env": env, "incident": meta["incident"],
                  "status": verdict.status.value, "exit_code": verdict.status.exit_code, "summary": verdict.summary,
                  "top_finding": verdict.top.code if verdict.top else None,
                  "codes": sorted({f.code for f in verdict.findings}), "started_at": prov["started_at"],
                  "finished_at": prov["finished_at"], "duration_s": prov["duration_s"], "report_dir": rel,
                  "redactions": redactions, "error": error, "entry": meta.get("entry"), "host": prov["host"]}
        cleaned, leaked = redact_text(json.dumps(record), secret_values(secrets_in_use))   # errors may quote one
        record = json.loads(cleaned) | {"redactions": redactions + leaked}
        filed_verdict = _read_json(staged / "verdict.json")
        _deliver(archive, space, staged, record)
    except OSError as exc:
        space.release()
        raise OutputError(f"could not write the report under {root}: {exc.strerror or exc}; the partial run is "
                          f"kept in {space.path} and the next run files it") from None
    problem = _file(archive, space, record)
    return RunResult(archive.where(record["report_dir"]), verdict, redactions, record, filed_verdict,
                     problem=problem)


def _archive(root: Path, meta: dict[str, Any]) -> Archive:
    """Where the run is filed: the archive its request named (kept in its workspace), else the report root."""
    location = meta.get("archive")
    if not location:
        return open_archive(root)
    return open_archive(location, archive_secrets(load_environment(meta["env"])))


def _report_dir(archive: Archive, started: datetime, slug: str, env: str, incident: str | None,
                run_id: str) -> str:
    """The run's new report folder, relative to the archive. A local one is made here (never reused: a suffix if
    the second is taken); in object storage, where other hosts file too, the name carries the run id's random
    part as well, and is made by the upload."""
    if archive.local is not None:
        from .report import make_run_dir
        return make_run_dir(archive.local, started, slug, env, incident).relative_to(archive.local).as_posix()
    base = "_".join(filter(None, [started.strftime("%H%M%S"), slug, env, incident])) + f"-{run_id[-4:]}"
    day = started.strftime("%Y-%m-%d")
    taken = set(archive.names(day))
    name = next(f"{base}{'' if n == 1 else f'-{n}'}" for n in range(1, 1000) if
                f"{base}{'' if n == 1 else f'-{n}'}" not in taken)
    return f"{day}/{name}"


def _deliver(archive: Archive, space: workspace.Workspace, staged: Path, record: dict[str, Any]) -> None:
    """The record kept in the workspace, then the whole report put in the archive: moved onto its new, empty
    folder in one step locally, uploaded to object storage (where it is listed only once its record is written,
    after every file is there). On a failure the record is dropped again locally; a failed upload keeps both in the
    workspace for the next run, and says where the complete report is."""
    write_atomic(space.filing, json.dumps(record))
    rel = record["report_dir"]
    if archive.local is None:
        _upload(archive, staged, rel)
        return
    folder = archive.local / rel
    try:
        os.replace(staged, folder)
    except OSError:
        space.filing.unlink(missing_ok=True)
        with suppress(OSError):
            folder.rmdir()
        raise


def _upload(archive: Archive, staged: Path, rel: str) -> None:
    """Every file of the report to the archive; OutputError naming where the complete report stays."""
    try:
        archive.put_folder(staged, rel)
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and fsspec raise their own
        raise UploadFailed(f"could not upload the report to {archive.where(rel)}: {store.reason(exc)}; the "
                           f"complete report is kept in {staged}, and the next run uploads and lists it") from None


class UploadFailed(OutputError):
    """The report is complete and scanned in the workspace, but object storage would not take it."""


def _file(archive: Archive, space: workspace.Workspace, record: dict[str, Any]) -> str | None:
    """List the delivered report in the catalogue (its record, then the index), then remove the workspace.

    OutputError, the workspace kept for the next run, when the record cannot be written. Once it is, the run is
    filed: an index that cannot be rewritten after that is returned as a problem (the next run pages the run with
    its own), and the workspace is removed all the same. Filing again a run cut short writes the same record.
    """
    from .catalog import NotPaged, file_run
    try:
        file_run(archive, record)
    except NotPaged as exc:
        space.remove()
        return f"the run is filed, but the archive's index in {archive.where()} could not be updated: {exc}; the " \
               "next run updates it"
    except Exception as exc:  # noqa: BLE001 - OSError locally, botocore's own errors on S3
        space.release()
        raise OutputError(f"could not list the run in {archive.where()}: {store.reason(exc)}; its report is in "
                          f"{archive.where(record['report_dir'])}, and the next run lists it") from None
    space.remove()
    return None


def finish_orphans(root: Path) -> None:
    """File the reports of runs whose runner died (their workspace lock is free), and complete the filings cut
    short (by a kill or a full disk) after their record was kept; never fails a new run."""
    for space in workspace.orphans(root):
        kernel.remove_sockets(space)
        try:
            if space.filing.is_file():
                _resume(root, space)
            elif (meta := _meta(space)) is None:   # killed before it wrote anything worth keeping
                space.remove()
            else:
                finish(root, space, _secrets(load_environment(meta["env"])), None, orphaned=True)
        except Exception:  # noqa: BLE001 - an old run must not stop a new one; it stays for a later try
            space.release()


def _meta(space: workspace.Workspace) -> dict[str, Any] | None:
    try:
        return space.meta()
    except (OSError, ValueError):
        return None


def _resume(root: Path, space: workspace.Workspace) -> None:
    """Complete a filing cut short after its record was kept: the report delivered if it is still staged (moved,
    or uploaded again whole), then listed (the same record again, if it was), and the workspace removed."""
    record = json.loads(space.filing.read_text(encoding="utf-8"))
    archive = _archive(root, _meta(space) or {})
    staged = space.path / "report"
    if staged.is_dir() and archive.local is None:
        _upload(archive, staged, record["report_dir"])
    elif staged.is_dir():
        folder = archive.local / record["report_dir"]
        folder.mkdir(mode=paths.REPORT_MODE, parents=True, exist_ok=True)
        os.replace(staged, folder)
    _file(archive, space, record)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _secrets(profile: Environment) -> list[str]:
    return [s.reveal() for s in profile.secrets().values()]


def _scan(folder: Path, secrets_in_use: list[str], earlier: int = 0) -> int:
    """Redact secrets across the folder; the count, with those redacted earlier, is recorded in verdict.json."""
    total = earlier + sum(redact_folder(folder, secrets_in_use).values())
    if total:
        path = folder / "verdict.json"
        data = json.loads(path.read_text())
        data["redactions"] = total
        write_atomic(path, json.dumps(data, indent=2) + "\n")
    return total


def _describe(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError
    if isinstance(exc, PapermillExecutionError):
        text = f"cell [{exc.exec_count}] raised {exc.ename}: {exc.evalue}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip()


class Stop:
    """What stop_signals() yields: `stop()` says whether a stop signal came; after `stop.shield()` the first one no
    longer raises (the notebook is done and its report is being filed: filing it is what the signal asks for)."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.shielded = False

    def __call__(self) -> bool:
        return bool(self.caught)

    def shield(self) -> None:
        self.shielded = True

    def handle(self, signum: int, frame: Any) -> None:
        self.caught.append(signum)
        if len(self.caught) == 1 and not self.shielded:
            raise KeyboardInterrupt


@contextmanager
def stop_signals() -> Iterator[Stop]:
    """SIGTERM, SIGINT and SIGHUP stop the notebook once (as KeyboardInterrupt); any further one is ignored
    until the process exits, so a scheduler's second SIGTERM can lose neither the report nor the exit code."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if stop() else handler)


@contextmanager
def _runner_log(path: Path) -> Iterator[None]:
    """What papermill, nbclient and asyncio log themselves (a kernel dying under an interrupt, a task abandoned
    mid-cell) goes to the workspace's log, not to the scheduler's stderr: the run's own result says what failed."""
    handler = logging.FileHandler(path, encoding="utf-8")
    loggers = [logging.getLogger(name) for name in ("papermill", "asyncio", "traitlets")]
    saved = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        gc.collect()   # an abandoned task reports its exception when it is collected: collect while we listen
        gc.unfreeze()  # (the run's own objects only: _ready_to_file froze the runner's modules, ~25 ms to scan)
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()


@contextmanager
def _kernel_env(**values: str | None) -> Iterator[None]:
    """Environment variables the kernel inherits for the duration of one run."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
