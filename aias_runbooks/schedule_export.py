"""`aias-runbooks schedule export`: the schedules file's entries for an orchestrator that keeps the time itself.

params/schedules.yaml stays the single source of truth: every format is written from its checked entries
(schedule.load, exactly as run-due checks them) and each run is `aias-runbooks schedule run NAME`, which reads the
entry from that file again. So a change is made there and exported again, never in the files written here.

- k8s-cronjob: one CronJob manifest per entry, `<name>.cronjob.yaml` (schedule = the cron, timeZone Etc/UTC,
  concurrencyPolicy Forbid: one run of an entry at a time). startingDeadlineSeconds is the entry's shortest interval
  between slots: a slot missed (the cluster down, the controller behind) may still start late, but only until the
  next slot is due, so a missed slot runs once, the latest, never a burst: run-due's catch-up. Exit 1 and 2 fail the
  Job and are never retried (a verdict, not a glitch); exit 3 (could not judge) is retried once. The image and the
  Secret are placeholders (secretKeyRef by name: no value is ever written).
- systemd: `aias-runbooks-<name>.service` (Type=oneshot) and `.timer` per entry; OnCalendar is the cron converted
  (UTC; a cron that restricts both day-of-month and day-of-week, matching either as cron does, is two OnCalendar=
  lines), Persistent=true: a slot missed while the machine was off runs once at boot, never a burst. A cron systemd
  cannot express (L, #) is one line naming the entry.
- airflow: the DAG file (aias_runbooks.integrations.airflow.dag_file_text()), one file for every entry: Airflow
  reads the schedules file itself.

Nothing is overwritten: every file is checked first (one line naming the one that exists, nothing written), then
each is written under a temporary name and linked into place, which fails if one appeared meanwhile.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from . import paths
from .errors import OutputError, UsageError
from .printable import show
from .schedule import Entry, default_path
from .settings import load_environment

FORMATS = ("airflow", "k8s-cronjob", "systemd")
IMAGE = "REPLACE-WITH-YOUR-IMAGE"   # an image holding this checkout, installed (pip install .), and its params/
HOME = "/opt/aias-runbooks"         # where the image holds the checkout (notebooks/, params/): AIAS_HOME
SECRET = "aias-runbooks-{env}"      # the Kubernetes Secret holding an environment's secret variables
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
K8S_MAX = 52                        # a CronJob's name: its Jobs add 11 characters to it, within 63
SLOTS_SCANNED = 10_000              # slots looked at for an entry's shortest interval (or a year, or 60 s found)
UNIT_UNSAFE = re.compile(r"[\s\"'\\%$;]|[\x00-\x1f\x7f]")   # read by systemd as more than a path
DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
HEADER = ("Written by `aias-runbooks schedule export --format {fmt}`, entry '{name}' of\n  {source}\n"
          "Change the schedules file and export again; this file is not read back.")


def export(entries: list[Entry], fmt: str, out: Path, source: Path | None = None) -> list[Path]:
    """Write the entries in `fmt` into the folder `out` (made if missing); the paths written, in order.
    UsageError (one line, nothing written) for an unknown format or an entry the format cannot express;
    OutputError when a file exists already (never overwritten) or cannot be written."""
    source = Path(source or default_path()).absolute()
    if fmt == "k8s-cronjob":
        files = k8s_cronjobs(entries, source)
    elif fmt == "systemd":
        files = systemd_units(entries, source)
    elif fmt == "airflow":
        files = {"aias_schedules.py": _dag_file_text()}
    else:
        raise UsageError(f"unknown export format {show(fmt)}; valid: {', '.join(FORMATS)}")
    if not files:
        raise UsageError(f"schedules file {show(str(source), 200)} has no entries: nothing to export")
    return write_new(out, files)


def write_new(out: Path, files: dict[str, str]) -> list[Path]:
    """Each file written whole into `out`, none replacing one there: all checked first, then each linked into place
    from a temporary file (a reader never sees half a file; one made meanwhile is not overwritten either)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {show(str(out), 200)} cannot be made: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise OutputError(f"--out {show(str(out), 200)} is not a folder")
    for name in files:
        if (out / name).exists() or (out / name).is_symlink():
            raise OutputError(f"{out / name} exists; nothing was written (files are never overwritten: remove it "
                              "or choose another --out)")
    written = []
    for name, text in files.items():
        target = out / name
        try:
            fd, temp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(temp, 0o644)
                os.link(temp, target)   # fails if it exists: never overwritten, even by a race
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
        except FileExistsError:
            done = ", ".join(p.name for p in written) or "none"
            raise OutputError(f"{target} appeared while exporting; it was left as it is, and {len(written)} "
                              f"file(s) before it were written: {done}") from None
        except OSError as exc:
            raise OutputError(f"{target} cannot be written: {exc.strerror or exc}; {len(written)} file(s) before it "
                              "were written") from None
        written.append(target)
    return written


def _dag_file_text() -> str:
    try:
        from .integrations.airflow import dag_file_text
    except ImportError:
        raise UsageError("--format airflow needs aias_runbooks.integrations.airflow, not in this version; valid "
                         "formats now: k8s-cronjob, systemd") from None
    return dag_file_text()


# -- Kubernetes ---------------------------------------------------------------------------------------------


def k8s_name(entry: str) -> str:
    """The CronJob's name for an entry: `aias-` and the name in lower case, '_' and '.' as '-' (DNS-1123), at most
    K8S_MAX characters."""
    name = "aias-" + re.sub(r"[^a-z0-9-]", "-", entry.lower())
    return re.sub(r"-+", "-", name)[:K8S_MAX].strip("-")


def k8s_cronjobs(entries: list[Entry], source: Path) -> dict[str, str]:
    """{file name: manifest} per entry; UsageError when two entries' names become one CronJob name."""
    files: dict[str, str] = {}
    named: dict[str, str] = {}
    for entry in entries:
        name = k8s_name(entry.name)
        if name in named:
            raise UsageError(f"entries '{named[name]}' and '{entry.name}' both become the CronJob name '{name}' "
                             "(lower case, '_' and '.' as '-'); rename one")
        named[name] = entry.name
        files[f"{name}.cronjob.yaml"] = k8s_cronjob(entry, source)
    return files


def k8s_cronjob(entry: Entry, source: Path) -> str:
    """One entry's CronJob manifest, with the comments saying what each choice is for."""
    name = k8s_name(entry.name)
    deadline = shortest_interval(entry.cron)
    profile = load_environment(entry.job.env)
    secret = SECRET.format(env=entry.job.env)
    variables = sorted(set(profile.secret_vars.values()))
    command = ["aias-runbooks", "schedule", "run", entry.name, "--schedules", f"$(AIAS_HOME)/params/{source.name}"]
    annotations = {"aias-runbooks/entry": entry.name, "aias-runbooks/runbook": entry.job.runbook,
                   "aias-runbooks/environment": entry.job.env}
    container: dict[str, Any] = {"name": "aias-runbooks", "image": IMAGE, "command": command, "env": [
        {"name": "AIAS_HOME", "value": HOME},
        *({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}} for var in variables)]}
    manifest = {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "aias-runbooks",
                                              "app.kubernetes.io/component": "schedule"},
                     "annotations": annotations},
        "spec": {
            "schedule": entry.cron, "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": deadline, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"annotations": dict(annotations)}, "spec": {
                "backoffLimit": 1,
                "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
                    "containerName": "aias-runbooks", "operator": "In", "values": [1, 2]}}]},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "aias-runbooks"},
                                          "annotations": dict(annotations)},
                             "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 120,
                                      "containers": [container]}}}}}}
    archive = entry.archive or getattr(profile, "archive", None)
    notes = [
        _comment(HEADER.format(fmt="k8s-cronjob", source=source, name=entry.name)),
        f"# {entry.job.runbook} on {entry.job.env}, cron '{entry.cron}' (UTC).",
        "# concurrencyPolicy Forbid: one run of the entry at a time, as run-due runs it.",
        f"# startingDeadlineSeconds {deadline}: the shortest interval between this entry's slots. A slot missed (the "
        "cluster down,\n# the controller behind) may start late only until the next slot is due: a missed slot runs "
        "once, the latest,\n# never a burst, as run-due catches up.",
        "# backoffLimit 1 with podFailurePolicy: exit 1 (WARNING) and 2 (CRITICAL) fail the Job, never retried;\n"
        "# exit 3 (could not judge) is retried once. terminationGracePeriodSeconds 120: a stopped run still files\n"
        "# its partial report.",
        f"# Placeholders: the image {IMAGE} holding this checkout at AIAS_HOME {HOME} (installed, with\n"
        f"# params/{source.name} and the profiles as exported), and the Secret\n"
        f"# '{secret}' holding the environment's secret variables by name (kubectl create secret generic\n"
        f"# {secret} --from-env-file=FILE); no secret value is ever written here. S3 credentials: the pod's\n"
        "# role (IRSA, workload identity) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from a Secret.",
        f"# Reports are filed in {archive}." if archive else
        "# No archive: set (entry or profile): reports stay in the pod's own output/ and go with it;\n"
        "# set archive: s3://bucket/prefix in the entry or its environment's profile.",
    ]
    text = "\n".join(notes) + "\n" + yaml.safe_dump(manifest, sort_keys=False, width=120)
    if yaml.safe_load(text) != manifest:   # the comments and the dump read back as the manifest, or nothing is written
        raise RuntimeError(f"the CronJob of entry '{entry.name}' does not read back as written")
    return text


def _comment(text: str) -> str:
    return "\n".join(f"# {line}" for line in text.splitlines())


def shortest_interval(cron: str) -> int:
    """The shortest time between two consecutive slots of a cron expression (UTC), in seconds: looked for over a
    year of slots (at most SLOTS_SCANNED; 60 s, the least there is, ends the search)."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    slots = croniter(cron, start - timedelta(seconds=1))
    last = slots.get_next(datetime)
    least = None
    for _ in range(SLOTS_SCANNED):
        slot = slots.get_next(datetime)
        gap = int((slot - last).total_seconds())
        least = gap if least is None else min(least, gap)
        if least <= 60 or slot - start > timedelta(days=366):
            break
        last = slot
    return least or 60


# -- systemd ------------------------------------------------------------------------------------------------


def systemd_units(entries: list[Entry], source: Path) -> dict[str, str]:
    """{file name: unit} per entry, a .service and its .timer; UsageError naming the first entry whose cron
    systemd cannot express (all are converted before anything is written)."""
    files: dict[str, str] = {}
    cli = Path(sys.executable).with_name("aias-runbooks")
    program = str(cli) if cli.exists() else "aias-runbooks"
    for what, path in (("the schedules file", source), ("the checkout", paths.project_root()),
                       ("the aias-runbooks program", program)):
        if UNIT_UNSAFE.search(str(path)):
            raise UsageError(f"{what}'s path {show(str(path), 200)} has a space, quote, backslash, '%' or control "
                             "character, which a unit file would read otherwise; valid: a plain path")
    for entry in entries:
        calendars = on_calendar(entry.cron, entry.name)
        unit = f"aias-runbooks-{entry.name}"
        files[f"{unit}.service"] = systemd_service(entry, source, program)
        files[f"{unit}.timer"] = systemd_timer(entry, source, calendars)
    return files


def systemd_service(entry: Entry, source: Path, program: str) -> str:
    root = paths.project_root()
    return "\n".join([
        _comment(HEADER.format(fmt="systemd", source=source, name=entry.name)),
        "# Started by its .timer. Exit 1 WARNING, 2 CRITICAL, 3 UNKNOWN fail the unit (`systemctl --failed`;\n"
        "# OnFailure= can page).",
        "# The profile's secrets: the EnvironmentFile below (mode 0600, yours), never this file.",
        "[Unit]",
        f"Description=aias-runbooks: {entry.name} ({entry.job.runbook} on {entry.job.env})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"User={getpass.getuser()}",
        f"WorkingDirectory={root}",
        f"EnvironmentFile=-{root / '.env'}",
        f"ExecStart={program} schedule run {entry.name} --schedules {source}",
        "# SIGTERM (systemctl stop) stops the notebook; the partial report is filed within this time.",
        "TimeoutStopSec=120",
        "",
    ])


def systemd_timer(entry: Entry, source: Path, calendars: list[str]) -> str:
    return "\n".join([
        _comment(HEADER.format(fmt="systemd", source=source, name=entry.name)),
        f"# cron '{entry.cron}' (UTC). Persistent=true: a slot missed while the machine was off runs once at\n"
        "# boot, never a burst, as run-due catches up.\n"
        f"# Enable: systemctl enable --now aias-runbooks-{entry.name}.timer",
        "[Unit]",
        f"Description=aias-runbooks: {entry.name} at cron '{entry.cron}' (UTC)",
        "",
        "[Timer]",
        *(f"OnCalendar={calendar}" for calendar in calendars),
        "AccuracySec=1s",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def on_calendar(cron: str, entry: str = "") -> list[str]:
    """The systemd OnCalendar= expressions (UTC) whose union is the cron expression's slots: one, or two when both
    day-of-month and day-of-week are restricted (cron then matches either). UsageError naming the entry for what
    systemd cannot express: L (the month's last day) and # (the nth weekday)."""
    where = f"entry '{entry}': " if entry else ""
    parsed = croniter(cron)
    minutes, hours, days, months, weekdays = parsed.expanded
    if "l" in days or getattr(parsed, "nth_weekday_of_month", None):
        raise UsageError(f"{where}cron '{cron}' cannot be a systemd timer (L, the month's last day, and #, the nth "
                         "weekday, have no OnCalendar form); valid for systemd: numbers, names, lists, ranges, steps")
    time = f"{_values(hours, 0, 23)}:{_values(minutes, 0, 59)}:00"
    date = f"*-{_values(months, 1, 12)}-"
    day_any, weekday_any = days == ["*"], weekdays == ["*"]
    if day_any or weekday_any:
        weekday = "" if weekday_any else _weekdays(weekdays) + " "
        return [f"{weekday}{date}{_values(days, 1, 31)} {time} UTC"]
    return [f"{date}{_values(days, 1, 31)} {time} UTC", f"{_weekdays(weekdays)} {date}* {time} UTC"]


def _values(values: list[Any], low: int, high: int) -> str:
    """A cron field's expanded values in systemd's form: '*', 'start/step', or a list of values and ranges (a..b)."""
    if values == ["*"] or sorted(values) == list(range(low, high + 1)):
        return "*"
    numbers = sorted(set(int(v) for v in values))
    width = 2
    if len(numbers) > 2:
        step = numbers[1] - numbers[0]
        if step > 1 and numbers == list(range(numbers[0], high + 1, step)):
            return f"{numbers[0]:0{width}d}/{step}"
    parts, run = [], [numbers[0]]
    for n in numbers[1:]:
        if n == run[-1] + 1:
            run.append(n)
            continue
        parts.append(run)
        run = [n]
    parts.append(run)
    return ",".join(f"{r[0]:0{width}d}..{r[-1]:0{width}d}" if len(r) > 2 else
                    ",".join(f"{n:0{width}d}" for n in r) for r in parts)


def _weekdays(values: list[Any]) -> str:
    numbers = sorted({int(v) % 7 for v in values})
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{DAYS[numbers[0]]}..{DAYS[numbers[-1]]}"
    return ",".join(DAYS[n] for n in numbers)
