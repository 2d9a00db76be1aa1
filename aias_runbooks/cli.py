"""aias-runbooks: list, run and demo runbooks, run them on a schedule (schedule run-due) or all at once (run-all);
start and stop the sandbox.

Exit codes of `run` follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
(bad input, runbook error, or no verdict possible).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import paths
from .errors import AiasError, UsageError
from .printable import printable, show

UNKNOWN = 3
MAX_CELL_TIMEOUT = 86400


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exits 3 (UNKNOWN): exit 2 means CRITICAL to a scheduler."""

    def error(self, message: str):
        self.exit(UNKNOWN, f"aias-runbooks: error: {one_line(message)} (see `{self.prog} --help`)\n")


def one_line(text: str, limit: int = 500) -> str:
    """A message as one printable line (control and format characters escaped), at most `limit` characters."""
    shown = printable(str(text)[:limit + 1])
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _seconds(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and 1 <= int(value) <= MAX_CELL_TIMEOUT):
        raise argparse.ArgumentTypeError(f"must be whole seconds from 1 to {MAX_CELL_TIMEOUT}, got {show(text)}")
    return int(value)


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder")
    return Path(text)


def _timestamp(text: str):
    from .timestamps import parse_timestamp
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {show(text)}") from None


def _count(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 3 and 1 <= int(value) <= 256):
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, got {show(text)}")
    return int(value)


def _port(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 5 and int(value) <= 65535):
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {show(text)}")
    return int(value)


def _limit(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise argparse.ArgumentTypeError(f"must be a whole number (0 or more), got {show(text)}")
    return int(value)


def build_parser() -> Parser:
    parser = Parser(prog="aias-runbooks", description="Executable runbooks for the AIAS Platform.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", help="runbooks with their description and parameters")
    run = sub.add_parser("run", help="run one runbook headlessly and archive its report")
    run.add_argument("runbook", help="runbook slug, as listed by `aias-runbooks list`")
    run.add_argument("--env", default="sandbox", help="environment profile in params/environments (default: sandbox)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="set a parameter")
    run.add_argument("-f", "--params-file", type=Path, help="YAML file of parameters (-p wins over it)")
    run.add_argument("--incident", help="incident id, added to the report folder name (e.g. INC-1234)")
    run.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    run.add_argument("--archive", metavar="URL", help="where the report is filed: a folder or s3://bucket/prefix "
                     "(default: the profile's archive:, else the report root); the run itself stays local")
    run.add_argument("--entry", metavar="NAME", help="the schedule entry this run stands for (recorded with it: a "
                     "change of status is judged per entry)")
    run.add_argument("--operator", help="who runs it, for the report and audit (default: the login name); "
                     "required with apply=true")
    run.add_argument("--cell-timeout", type=_seconds, default=300,
                     help=f"seconds one cell may run, 1 to {MAX_CELL_TIMEOUT} (default: 300)")
    run.add_argument("--metrics-dir", type=_folder, help="write the verdict's Prometheus series to "
                     "DIR/aias_runbooks_<runbook>_<env>.prom (node_exporter's textfile collector), replaced whole")
    demo = sub.add_parser("demo", help="bring up the sandbox and run every runbook against it "
                          "(exit 1 only if a runbook itself failed)")
    demo.add_argument("--output", type=_folder, help="report root (default: output/)")
    demo.add_argument("--pooler", choices=["transaction", "session", "none"],
                      help="the database through a real PgBouncer in that pool mode, as `sandbox up --pooler`")
    doctor = sub.add_parser("doctor", help="is an environment ready for the runbooks? secrets, targets, the "
                            "database role (the playbook's validate-env); exit code as for a runbook")
    doctor.add_argument("--env", default="sandbox",
                        help="environment profile in params/environments (default: sandbox)")
    schedule = sub.add_parser("schedule", help="scheduled runs from params/schedules.yaml")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True, parser_class=Parser)
    due = schedule_sub.add_parser("run-due", help="run each entry whose slot is due, once per slot (call it every "
                                  "minute); one line per run; exit code: the worst run's (0 when none was due)")
    due.add_argument("--now", type=_timestamp, help="the time to judge slots at, ISO 8601 with a UTC offset "
                     "(default: now)")
    due.add_argument("--schedules", type=Path, help="schedules file (default: params/schedules.yaml)")
    due.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    due.add_argument("--parallel", type=_count, help="runs at once when several are due (default: CPU count)")
    due.add_argument("--metrics-dir", type=_folder, help="after each run, its Prometheus series in "
                     "DIR/aias_runbooks_<runbook>_<env>.prom (node_exporter's textfile collector)")
    due.add_argument("--archive", metavar="URL", help="where the runs are filed: a folder or s3://bucket/prefix "
                     "(default: each entry's archive:, else its profile's, else the report root)")
    check = schedule_sub.add_parser("check", help="check the schedules file as run-due does and list its entries; "
                                    "exit 3 with one line naming the entry when one is bad")
    check.add_argument("--schedules", type=Path, help="schedules file (default: params/schedules.yaml)")
    check.add_argument("--json", action="store_true", help="the checked entries as JSON (for an orchestrator)")
    one = schedule_sub.add_parser("run", help="run one entry now (an orchestrator chose the time: no slot, no lock), "
                                  "then tell a change of status per its notify:; exit code: the run's")
    one.add_argument("name", help="the entry's name in the schedules file")
    notice = schedule_sub.add_parser("notify", help="tell the change of status of an entry's run already filed, "
                                     "judged against the entry's previous run in the catalogue (for callbacks)")
    notice.add_argument("name", help="the entry's name in the schedules file")
    notice.add_argument("--run-id", required=True, help="the run to tell of (YYYYmmdd-HHMMSS-xxxx)")
    for sub_parser in (one, notice):
        sub_parser.add_argument("--schedules", type=Path, help="schedules file (default: params/schedules.yaml)")
        sub_parser.add_argument("--archive", help="where runs are filed: a folder or s3://bucket/prefix (default: "
                                "the entry's archive:, else the profile's, else the report root)")
        sub_parser.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    export = schedule_sub.add_parser("export", help="write the schedules file's entries as an Airflow DAG file, "
                                     "Kubernetes CronJobs or systemd timers; never overwrites a file")
    export.add_argument("--format", required=True, choices=["airflow", "k8s-cronjob", "systemd"])
    export.add_argument("--schedules", type=Path, help="schedules file (default: params/schedules.yaml)")
    export.add_argument("--out", type=_folder, default=Path("."), help="folder to write into (default: .)")
    run_all = sub.add_parser("run-all", help="run a set of runbooks in parallel, print a table; exit code: the "
                             "worst run's")
    run_all.add_argument("--runbooks", help="comma-separated slugs (default: every runbook)")
    run_all.add_argument("--env", default="sandbox", help="environment profile (default: sandbox)")
    run_all.add_argument("--parallel", type=_count, help="runs at once (default: CPU count)")
    run_all.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    run_all.add_argument("--archive", metavar="URL", help="where the reports are filed: a folder or "
                         "s3://bucket/prefix (default: the profile's archive:, else the report root)")
    reports = sub.add_parser("reports", help="archived runs, newest first, filtered; `reports prune --keep-days N` "
                             "deletes old ones (never a run tied to an incident)")
    reports.add_argument("--since", help="runs started since a UTC date (2026-11-20) or in the last 90m, 24h, 7d, 2w")
    reports.add_argument("--runbook", help="only this runbook's runs")
    reports.add_argument("--status", help="only runs with this status: OK, WARNING, CRITICAL or UNKNOWN")
    reports.add_argument("--incident", help="only runs filed with this incident id")
    reports.add_argument("--limit", type=_limit, default=100, help="show the newest N matching runs (default: 100; "
                         "0: all)")
    reports.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    reports.add_argument("--archive", metavar="URL", help="the archive to read: a folder or s3://bucket/prefix "
                         "(default: the report root)")
    prune = reports.add_subparsers(dest="reports_action", parser_class=Parser).add_parser(
        "prune", help="delete the reports of runs older than --keep-days and their catalogue lines, then page the "
        "archive again; runs tied to an incident are kept")
    prune.add_argument("--keep-days", type=_limit, required=True, metavar="N", help="keep the last N days (1 or more)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    prune.add_argument("--output", type=_folder, default=argparse.SUPPRESS,
                       help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    prune.add_argument("--archive", metavar="URL", default=argparse.SUPPRESS,
                       help="the archive to prune: a folder or s3://bucket/prefix (default: the report root)")
    bundle = sub.add_parser("bundle", help="one zip of every report of an incident with a SHA-256 manifest, for the "
                            "postmortem; --verify checks one (exit 0 intact, 2 not)")
    which = bundle.add_mutually_exclusive_group(required=True)
    which.add_argument("--incident", help="the incident id the runs were filed with (run --incident)")
    which.add_argument("--verify", type=Path, metavar="PATH", help="check a bundle against its manifest")
    bundle.add_argument("--out", type=Path, metavar="PATH", help="the zip to write, never overwritten "
                        "(default: a new file in output/bundles/)")
    bundle.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    bundle.add_argument("--archive", metavar="URL", help="the archive to read: a folder or s3://bucket/prefix "
                        "(default: the report root)")
    approve = sub.add_parser("approve", help="approve a guarded action's request filed by a dry run (four-eyes: "
                             "not your own); the apply is then a rerun with -p approval=ID -p apply=true")
    approve.add_argument("id", help="the request's id (apr-...), as the dry run printed it or `approvals` lists it")
    approve.add_argument("--as", dest="approver", help="who approves, for the audit record (default: the login name)")
    approve.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    approvals = sub.add_parser("approvals", help="the approval requests under the report root, newest first")
    approvals.add_argument("--status", choices=["pending", "approved", "applied", "expired"],
                           help="only requests with this status")
    approvals.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    serve = sub.add_parser("serve", help="take alerts (Alertmanager, Grafana, PagerDuty webhooks) and run the runbook "
                           "each routes to (params/routes.yaml); SIGTERM drains")
    serve.add_argument("--routes", type=Path, help="routes file (default: params/routes.yaml)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8087, help="port to listen on (default: 8087)")
    serve.add_argument("--output", type=_folder, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    serve.add_argument("--metrics-dir", type=_folder, help="also write each run's Prometheus textfile here")
    console = sub.add_parser("console", help="the console's users (served by `serve` under /console/)")
    add_user = console.add_subparsers(dest="console_action", parser_class=Parser, required=True).add_parser(
        "add-user", help="add a console user and print their token once (only its sha256 is kept)")
    add_user.add_argument("name", help="the user's name (shown in the console and its audit records)")
    add_user.add_argument("--role", required=True, help="viewer, operator or approver")
    add_user.add_argument("--users", type=Path, help="users file (default: params/console_users.yaml; a serve "
                          "profile's console.users_file may name another)")
    sandbox = sub.add_parser("sandbox", help="the embedded AIAS Platform")
    sandbox.add_argument("action", choices=["up", "down", "status", "alert"])
    sandbox.add_argument("name", nargs="?", help="with `alert`: the alert to post (error-spike, pool-exhaustion, "
                         "webhook-failures, api-down)")
    sandbox.add_argument("--resolve", action="store_true", help="with `alert`: post it resolved")
    sandbox.add_argument("--to", default="http://127.0.0.1:8087", help="with `alert`: serve's base URL "
                         "(default: http://127.0.0.1:8087)")
    sandbox.add_argument("--sender", default="alertmanager", help="with `alert`: the routes.yaml sender to post as "
                         "(default: alertmanager)")
    sandbox.add_argument("--scenario", default="healthy", help="fault to inject with `up` (default: healthy)")
    sandbox.add_argument("--scale", choices=["default", "large"],
                         help="history `up` loads: default (72 hours), or large (30 days: 10 M API requests, "
                         "2 M error logs, 1 M workflow executions, 50 k users, 2 k tenants, 2,000 archive tables, "
                         "~5,000 statements); a running sandbox keeps its scale (default: default)")
    sandbox.add_argument("--pooler", choices=["transaction", "session", "none"],
                         help="with `up`: a real PgBouncer (the system's pgbouncer package) in that pool mode in front "
                         "of Postgres, on port base+4, the profile's database_url through it, as on Supabase's "
                         "pooler; none: direct again (default: keep the running sandbox's, else direct)")
    return parser


def parse_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """-f file values (FileValue: messages name their line, never quote them), overridden by -p KEY=VALUE."""
    from .runner.parameterize import parse_pairs, read_params_file
    params: dict[str, Any] = read_params_file(params_file) if params_file is not None else {}
    return params | parse_pairs(pairs)


def cmd_list() -> int:
    """Each runbook present: its title and one line (the notebook's metadata), when to run it and its guarded
    action (the catalogue's; a notebook the catalogue does not hold has neither), then its parameters."""
    from . import catalogue
    from .runner.parameterize import load_runbook
    known = catalogue.runbooks()
    for slug in catalogue.slugs():
        info = load_runbook(slug)
        say(f"{slug:<28} {info.title}")
        lines = [info.description]
        if entry := known.get(slug):
            lines += [f"when: {entry.when}", f"guarded action: {entry.action or 'none (it changes nothing)'}"]
        for line in [*filter(None, lines), *(p.describe() for p in info.parameters.values())]:
            say(f"    {line}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .metrics import check_dir
    from .runner.request import prepare  # light: bad input is refused before papermill is even imported
    metrics_dir = check_dir(args.metrics_dir) if args.metrics_dir is not None else None
    request = prepare(args.runbook, args.env, parse_params(args.param, args.params_file), args.incident,
                      args.operator, args.output, archive=args.archive, entry=args.entry)
    from .runner.execute import execute
    result = execute(request, args.cell_timeout)
    verdict = result.filed_verdict
    from .metrics import summary_line
    # The redacted summary, then its performance data (monitoring-plugins: after " | ") from the filed verdict.
    say(f"{summary_line(result.record['summary'], verdict.get('findings') or [])}\n"
        f"  report: {result.where}/report.html")
    if metrics_dir is not None:
        _write_metrics(metrics_dir, verdict, result.record)
    if result.problem:   # filed, but a full disk kept part of it from the archive: one line
        say(f"aias-runbooks: error: {one_line(result.problem)}", sys.stderr)
    if result.redactions:
        say(f"  warning: {result.redactions} secret(s) were found in the report and redacted", sys.stderr)
    return result.exit_code


def _write_metrics(metrics_dir: Path, verdict: dict[str, Any], record: dict[str, Any]) -> None:
    """The run's textfile; a failure to write it is one line on stderr, never a changed exit code (the run is
    filed and its verdict stands)."""
    from datetime import datetime

    from .metrics import write_textfile
    try:
        finished = datetime.fromisoformat(record["finished_at"]).timestamp()
        write_textfile(metrics_dir, verdict or {"runbook": record["runbook"], "env": record["env"],
                                                "status": record["status"]}, float(record["duration_s"]), finished)
    except (OSError, AiasError, KeyError, ValueError) as exc:
        say(f"aias-runbooks: error: metrics not written to {metrics_dir}: {one_line(str(exc), 200)}", sys.stderr)


def exit_now(code: int) -> NoReturn:
    """Exit as soon as the run is filed and said: tearing down the ~800 modules that papermill and jupyter_client
    loaded cost every run ~0.2 s and saves nothing (the report is written, the kernel gone, the log closed here)."""
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError):   # a reader that went away (a closed pipe) must not turn the exit into a traceback
            stream.flush()
    os._exit(code)


def print_table(rows: list[dict[str, Any]]) -> None:
    """Rows as a left-aligned text table (a DataFrame, rendered for a terminal)."""
    import pandas as pd
    table = pd.DataFrame(rows).astype(str)
    left = {c: f"{{:<{max(table[c].str.len().max(), len(c))}}}".format for c in table.columns}
    say(table.to_string(index=False, justify="left", formatters=left))


def cmd_demo(args: argparse.Namespace) -> int:
    from .catalogue import slugs
    from .runner.execute import execute, prepare
    from .sandbox import control
    say("Starting the sandbox (a local AIAS Platform: Postgres, API, localstripe)...")
    control.up("healthy", pooler=args.pooler)
    rows, broken = [], 0
    for slug in [s for s in slugs() if s != "triage"] + ["triage"]:   # triage's ranking ends the demo
        say(f"running {slug}...")
        result = execute(prepare(slug, "sandbox", output=args.output))
        if result.interrupted:
            raise KeyboardInterrupt
        broken += any(f.code == "RUNBOOK_ERROR" for f in result.verdict.findings)
        if result.problem:
            say(f"aias-runbooks: error: {one_line(result.problem)}", sys.stderr)
        rows.append({"runbook": slug, "status": result.verdict.status.value,
                     "top finding": result.record["top_finding"] or "-", "report": f"{result.where}/report.html"})
    say("")
    print_table(rows)
    say_ranking(result.verdict.findings)
    say(f"\nAll reports: {Path(args.output or paths.output_dir()) / 'index.html'}")
    say("Step through a runbook yourself: `make lab` (the sandbox stays up; `aias-runbooks sandbox down` stops it).")
    say("Browse, compare, rerun and approve in the console: `make console`, then http://127.0.0.1:8087/console/")
    return 1 if broken else 0


def say_ranking(findings: list) -> None:
    """Triage's ranking, or its all clear: where to look first."""
    from .checks import triage
    ranking = triage.rank(findings, "sandbox")
    say("\nTriage, where to look first:")
    if ranking.empty:
        clear = [f.title for f in findings if f.code == "TRIAGE_ALL_CLEAR"]
        say(f"  {clear[0] if clear else 'no ranking: triage did not finish (see its report)'}")
        return
    print_table(ranking[["rank", "severity", "run next", "findings", "command"]].to_dict("records"))


def cmd_schedule(args: argparse.Namespace) -> int:
    commands = {"run-due": _schedule_run_due, "check": _schedule_check, "run": _schedule_run,
                "notify": _schedule_notify, "export": _schedule_export}
    return commands[args.schedule_command](args)


def _schedule_run_due(args: argparse.Namespace) -> int:
    from . import schedule
    from .metrics import check_dir
    now = schedule.check_now(args.now)   # --now, then the whole file, checked before anything is written
    metrics_dir = check_dir(args.metrics_dir) if args.metrics_dir is not None else None
    entries = schedule.load(args.schedules, args.output)
    due = schedule.run_due(entries, args.output, now, args.parallel, metrics_dir, args.archive)
    if due.busy:
        say(f"another run-due holds the lock for more than {schedule.LOCK_WAIT_S:g} s; it runs what is due")
    for ran in due.ran:
        say(ran.line())
        for line in ran.outcome.stderr.splitlines() + ran.notes:
            say(f"  {ran.entry.name}: {line}", sys.stderr)
    return due.exit_code


def _schedule_check(args: argparse.Namespace) -> int:
    """The entries, checked exactly as run-due checks them: as JSON for an orchestrator's DAG file, or a line each."""
    import json

    from . import schedule
    entries = schedule.load(args.schedules)
    if args.json:
        say(json.dumps({"schedules": [e.as_dict() for e in entries]}, indent=2, default=str))
        return 0
    for entry in entries:
        say(f"{entry.name:<28} {entry.cron:<18} {entry.job.runbook} on {entry.job.env}")
    say(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} valid")
    return 0


def _schedule_run(args: argparse.Namespace) -> int:
    from . import schedule
    entry = schedule.find(schedule.load(args.schedules, args.output), args.name)
    ran = schedule.run_entry(entry, args.output, args.archive)
    say(ran.line())
    for line in ran.outcome.stderr.splitlines() + ran.notes:
        say(f"  {entry.name}: {line}", sys.stderr)
    return ran.outcome.exit_code


def _schedule_notify(args: argparse.Namespace) -> int:
    from . import schedule
    entry = schedule.find(schedule.load(args.schedules, args.output), args.name)
    told = schedule.tell_filed(entry, args.run_id, args.output, args.archive)
    for line in told.lines:
        say(line)
    for line in told.problems:
        say(f"aias-runbooks: error: {one_line(line)}", sys.stderr)
    return UNKNOWN if told.problems else 0


def _schedule_export(args: argparse.Namespace) -> int:
    from . import schedule, schedule_export
    entries = schedule.load(args.schedules)   # the whole file first: a bad one writes nothing
    for path in schedule_export.export(entries, args.format, args.out, args.schedules):
        say(str(path))
    return 0


def cmd_run_all(args: argparse.Namespace) -> int:
    from . import catalogue
    from .runner.request import make_output_root, prepare
    from .runner.run_all import Job, run_jobs, worst
    slugs = [s.strip() for s in args.runbooks.split(",") if s.strip()] if args.runbooks else catalogue.slugs()
    if not slugs:
        raise UsageError("--runbooks names no runbook; give comma-separated slugs (see `aias-runbooks list`)")
    requests = [prepare(s, args.env, output=args.output, make_root=False, archive=args.archive)
                for s in slugs]   # all, before any write
    make_output_root(requests[0].output)
    jobs = [Job(r.info.slug, r.profile.name, archive=args.archive) for r in requests]
    outcomes = run_jobs(jobs, args.output, args.parallel)
    print_table([{"runbook": o.job.runbook, "status": o.status, "top finding": o.top_finding or "-",
                  "seconds": f"{o.seconds:.1f}", "report": o.report or o.summary} for o in outcomes])
    for outcome in outcomes:
        for line in outcome.stderr.splitlines():
            say(f"  {outcome.job.runbook}: {line}", sys.stderr)
    return worst([o.exit_code for o in outcomes])


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, report
    lines, exit_code = report(diagnose(args.env), args.env)
    for line in lines:
        say(line)
    return exit_code


def cmd_reports(args: argparse.Namespace) -> int:
    from .runner import archive
    root = _archive_to_read(args)
    if args.reports_action == "prune":
        given = [f"--{name}" for name in ("since", "runbook", "status", "incident") if getattr(args, name)]
        if given:
            raise UsageError(f"{', '.join(given)} filter(s) `reports`, not `reports prune`: prune takes --keep-days "
                             "and --dry-run")
        say(archive.prune(root, args.keep_days, args.dry_run).summary())
        return 0
    for line in archive.show_reports(root, args.since, args.runbook, args.status, args.incident, args.limit):
        say(line)
    return 0


def _archive_to_read(args: argparse.Namespace) -> Any:
    """The archive `reports`, `reports prune` and `bundle` read: --archive, else the report root (--output,
    AIAS_OUTPUT_DIR, output/); checked (one line, exit 3) before it is read. An archive from before records
    (a runs.jsonl) is upgraded first."""
    from .runner import catalog
    from .runner.store import open_archive
    archive = open_archive(args.archive or Path(args.output or paths.output_dir()).absolute())
    archive.check(write=getattr(args, "reports_action", None) == "prune")
    catalog.upgrade(archive)
    return archive


def cmd_bundle(args: argparse.Namespace) -> int:
    from .runner import bundle
    key = bundle.bundle_key()        # AIAS_BUNDLE_KEY: signs a new bundle, checks a bundle's signature
    if args.verify is not None:
        if args.out is not None:
            raise UsageError("--out writes a bundle: it goes with --incident, not --verify")
        code, line = bundle.verify(args.verify, key)
        say(line, sys.stdout if code == 0 else sys.stderr)
        return code
    path, manifest = bundle.make_bundle(_archive_to_read(args), args.incident, args.out, key=key,
                                        local=Path(args.output or paths.output_dir()).absolute())
    size = path.stat().st_size
    signed = (f"signed: HMAC-SHA256 of manifest.json with {bundle.KEY_VAR}, in {bundle.SIGNATURE}" if key else
              f"unsigned ({bundle.UNSIGNED}): set {bundle.KEY_VAR} to sign")
    say(f"bundle of incident {args.incident}: {len(manifest['runs'])} run(s), "
        f"{len(manifest['files']) + 1 + bool(key)} file(s) with manifest.json, {size} bytes, {signed}\n  {path}\n"
        f"  check it with `aias-runbooks bundle --verify {path}`")
    if missing := manifest["missing_reports"]:
        say(f"aias-runbooks: warning: {len(missing)} report folder(s) of the incident are missing from the archive "
            f"(listed in the manifest): {one_line(', '.join(map(str, missing)), 200)}", sys.stderr)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Approve a request as --as (default the login name); a refusal is one line, exit 3."""
    import getpass

    from .actions import approvals
    try:
        request = approvals.approve(args.id, args.approver if args.approver is not None else getpass.getuser(),
                                    "cli", args.output)
    except approvals.ApprovalRefused as exc:
        raise UsageError(str(exc)) from None
    say(f"approved {request.id} ({request.action} on {len(request.plan)} target(s), env {request.env}, requested by "
        f"{request.requested_by}) as {request.approved_by}; expires {request.expires_at}. Apply: aias-runbooks run "
        f"{request.runbook} --env {request.env} -p approval={request.id} -p apply=true --operator NAME (with the dry "
        "run's parameters)")
    return 0


def cmd_approvals(args: argparse.Namespace) -> int:
    """The requests as a table, newest first."""
    from .actions import approvals
    found = approvals.requests(args.output, args.status)
    if not found:
        say(f"no approval requests{f' with status {args.status}' if args.status else ''} under "
            f"{Path(args.output or paths.output_dir()).absolute()}")
        return 0
    print_table([{"id": r.id, "status": r.status, "action": r.action, "env": r.env, "targets": len(r.plan),
                  "requested by": r.requested_by, "approved by": r.approved_by or "-", "expires": r.expires_at,
                  "dry run": r.run_id} for r in found])
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .alerts import routes
    from .metrics import check_dir
    from .runner.request import make_output_root, output_root
    from .serve.app import serve
    routing = routes.load(args.routes)   # the whole file, before anything is served or written
    metrics_dir = check_dir(args.metrics_dir) if args.metrics_dir is not None else None
    output = make_output_root(output_root(args.output))
    return asyncio.run(serve(routing, args.host, args.port, output, metrics_dir, say))


def cmd_console(args: argparse.Namespace) -> int:
    """`console add-user NAME --role ROLE`: the token on stdout, once."""
    from .console.users import add_user, default_path
    path = args.users or default_path()
    token = add_user(path, args.name, args.role)
    say(f"added {args.name} ({args.role}) to {path}; their token, shown only now:")
    say(token)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import control
    if args.action == "alert":
        from .sandbox import alerts
        if not args.name:
            raise UsageError(f"`sandbox alert` needs the alert's name; valid: {', '.join(alerts.RULES)}")
        for line in alerts.post(args.name, args.resolve, args.to, args.sender):
            say(line)
        return 0
    if args.name:
        raise UsageError(f"`sandbox {args.action}` takes no name (the name is for `sandbox alert NAME`)")
    if args.action == "up":
        control.up(args.scenario, scale=args.scale, pooler=args.pooler)
        return 0
    if args.action == "down":
        control.down()
        return 0
    print_table([{"component": row["component"], "state": "running" if row["running"] else "stopped",
                  "port": row["port"] or "-", "detail": row["detail"]} for row in control.status()])
    state = control.read_state()
    say(f"scenario: {state.get('scenario') if state else '-'}   folder: {paths.sandbox_dir()}")
    return 0 if control.is_up(state) else 1


def say(text: str, stream: TextIO | None = None) -> None:
    """Print and flush; a reader that went away (closed pipe, `| head`) is not an error: nobody is listening.

    Every command prints through here, so its exit code stays its own whoever reads (or stops reading) its output,
    and the platform's text in it (a finding's title quoting a commit message, a domain, a rate-limit key) is shown
    printable: escape sequences and format characters as their escapes (printable.py), never acted on. Lines and
    tabs stay: a table or a summary with its report path spans lines.
    """
    stream = stream or sys.stdout
    try:
        print(printable(text, keep="\n\t"), file=stream, flush=True)
    except (OSError, ValueError):
        try:   # point the fd at /dev/null, so the interpreter's final flush does not fail (exit 120) either
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass


def fail(message: str) -> int:
    """One line on stderr, exit 3 (UNKNOWN)."""
    say(f"aias-runbooks: error: {one_line(message)}", sys.stderr)
    return UNKNOWN


def ensure_std_fds() -> None:
    """Open /dev/null on any of fds 0, 1, 2 that is closed (`>&-`), before anything else opens a file.

    Otherwise the next file opened (a report, a socket) would become "stdout", and a kernel started without a
    stdout dies; the run's exit code must be its verdict's whoever is (not) listening.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))   # noqa: SIM115 - lives as long as the process


def check_utf8(argv: list[str]) -> None:
    """Python decodes argv with surrogateescape: an argument that is not UTF-8 holds lone surrogates."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                shown = show(arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
            except UnicodeError:
                shown = show(arg)
            raise UsageError(f"argument {shown} is not valid UTF-8") from None


def main(argv: list[str] | None = None) -> int:
    ensure_std_fds()
    as_program, argv = argv is None, sys.argv[1:] if argv is None else list(argv)
    try:
        check_utf8(argv)
    except UsageError as exc:
        return fail(str(exc))
    args = build_parser().parse_args(argv)
    try:
        commands = {"list": lambda _: cmd_list(), "run": cmd_run, "demo": cmd_demo, "doctor": cmd_doctor,
                    "reports": cmd_reports, "bundle": cmd_bundle, "schedule": cmd_schedule, "run-all": cmd_run_all,
                    "serve": cmd_serve, "approve": cmd_approve, "approvals": cmd_approvals,
                    "console": cmd_console}
        code = commands.get(args.command, cmd_sandbox)(args)
        if as_program and args.command == "run":
            exit_now(code)
        return code
    except AiasError as exc:   # UsageError, OutputError, SandboxError: the message is fit to show as it is
        return fail(str(exc))
    except RuntimeError as exc:
        if args.command not in ("sandbox", "demo"):
            return _unexpected(exc)
        say(f"aias-runbooks: sandbox: {one_line(str(exc))}", sys.stderr)
        return UNKNOWN
    except KeyboardInterrupt:
        print("aias-runbooks: interrupted", file=sys.stderr)
        return UNKNOWN
    except Exception as exc:  # noqa: BLE001 - a bug outside the notebook is still one line and exit 3
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> int:
    """One line naming the exception (key shapes redacted); AIAS_DEBUG=1 adds the traceback."""
    if os.environ.get("AIAS_DEBUG"):
        traceback.print_exc()
    from .runner.redact import redact_text
    text, _ = redact_text(f"{type(exc).__name__}: {exc}", [])
    hint = "" if os.environ.get("AIAS_DEBUG") else " (AIAS_DEBUG=1 shows the traceback)"
    return fail(f"unexpected {one_line(text, 300)}{hint}")


if __name__ == "__main__":
    sys.exit(main())
