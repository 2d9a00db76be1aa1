"""aias-runbooks: list, run and demo runbooks; start and stop the sandbox.

Exit codes of `run` follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
(bad input, runbook error, or no verdict possible).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import UsageError

UNKNOWN = 3


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 3 (UNKNOWN): exit 2 means CRITICAL to a scheduler."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(UNKNOWN, f"{self.prog}: error: {message}\n")


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
    run.add_argument("--output", type=Path, help="report root (default: output/ or AIAS_OUTPUT_DIR)")
    run.add_argument("--operator", help="who runs it, for the report and audit (default: the login name); "
                     "required with apply=true")
    run.add_argument("--cell-timeout", type=int, default=300, help="seconds one cell may run (default: 300)")
    demo = sub.add_parser("demo", help="bring up the sandbox and run every runbook against it "
                          "(exit 1 only if a runbook itself failed)")
    demo.add_argument("--output", type=Path, help="report root (default: output/)")
    sandbox = sub.add_parser("sandbox", help="the embedded AIAS Platform")
    sandbox.add_argument("action", choices=["up", "down", "status"])
    sandbox.add_argument("--scenario", default="healthy", help="fault to inject with `up` (default: healthy)")
    return parser


def parse_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """-f file values, overridden by -p key=value pairs."""
    params: dict[str, Any] = {}
    if params_file:
        if not params_file.is_file():
            raise UsageError(f"parameters file {params_file} does not exist")
        loaded = yaml.safe_load(params_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise UsageError(f"parameters file {params_file} must hold a mapping of name: value")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected -p KEY=VALUE, got {pair!r}")
        params[key.strip()] = value
    return params


def cmd_list() -> int:
    from .runner.parameterize import load_runbook, runbook_slugs
    for slug in runbook_slugs():
        info = load_runbook(slug)
        print(f"{slug:<28} {info.description}")
        for param in info.parameters.values():
            print(f"    {param.describe()}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner.execute import execute, prepare
    request = prepare(args.runbook, args.env, parse_params(args.param, args.params_file), args.incident,
                      args.operator)
    result = execute(request, args.output, args.cell_timeout)
    print(f"{result.record['summary']}\n  report: {result.folder / 'report.html'}")   # the redacted summary
    if result.redactions:
        print(f"  warning: {result.redactions} secret(s) were found in the report and redacted", file=sys.stderr)
    return result.exit_code


def print_table(rows: list[dict[str, Any]]) -> None:
    """Rows as a left-aligned text table (a DataFrame, rendered for a terminal)."""
    import pandas as pd
    table = pd.DataFrame(rows).astype(str)
    left = {c: f"{{:<{max(table[c].str.len().max(), len(c))}}}".format for c in table.columns}
    print(table.to_string(index=False, justify="left", formatters=left))


def cmd_demo(args: argparse.Namespace) -> int:
    from .runner.execute import execute, prepare
    from .runner.parameterize import runbook_slugs
    from .sandbox import control
    print("Starting the sandbox (a local AIAS Platform: Postgres, API, localstripe)...")
    control.up("healthy")
    rows, broken = [], 0
    for slug in runbook_slugs():
        print(f"running {slug}...", flush=True)
        result = execute(prepare(slug, "sandbox"), args.output)
        if result.interrupted:
            raise KeyboardInterrupt
        broken += any(f.code == "RUNBOOK_ERROR" for f in result.verdict.findings)
        rows.append({"runbook": slug, "status": result.verdict.status.value,
                     "top finding": result.record["top_finding"] or "-", "report": result.folder / "report.html"})
    print()
    print_table(rows)
    print(f"\nAll reports: {Path(args.output or paths.output_dir()) / 'index.html'}")
    print("Step through a runbook yourself: `make lab` (the sandbox stays up; `aias-runbooks sandbox down` stops it).")
    return 1 if broken else 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import control
    if args.action == "up":
        control.up(args.scenario)
        return 0
    if args.action == "down":
        control.down()
        return 0
    print_table([{"component": row["component"], "state": "running" if row["running"] else "stopped",
                  "port": row["port"] or "-", "detail": row["detail"]} for row in control.status()])
    state = control.read_state()
    print(f"scenario: {state.get('scenario') if state else '-'}   folder: {paths.sandbox_dir()}")
    return 0 if control.is_up(state) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "demo":
            return cmd_demo(args)
        return cmd_sandbox(args)
    except UsageError as exc:
        print(f"aias-runbooks: error: {exc}", file=sys.stderr)
        return UNKNOWN
    except RuntimeError as exc:
        if args.command not in ("sandbox", "demo"):
            raise
        print(f"aias-runbooks: sandbox: {exc}", file=sys.stderr)
        return UNKNOWN
    except KeyboardInterrupt:
        print("aias-runbooks: interrupted", file=sys.stderr)
        return UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
