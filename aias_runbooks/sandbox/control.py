"""`aias-runbooks sandbox up|down|status`: start, stop and describe the embedded AIAS Platform.

Everything lives in the sandbox folder (AIAS_SANDBOX_DIR, default .sandbox/): state.json records what `up`
started (pid and start time of each process), sandbox.env holds the generated URLs and secrets that the
`sandbox` environment profile reads, logs/ holds each component's output.

sandbox.env holds four database URLs, one per role, as a Supabase project has them: AIAS_SANDBOX_DATABASE_URL is the
non-superuser monitoring role aias_monitor (the profile's database_url, so every runbook diagnoses as production
does), AIAS_SANDBOX_APP_DATABASE_URL the application role aias_app (the sandbox API and workloads),
AIAS_SANDBOX_POSTGRES_DATABASE_URL the project's `postgres` login (not a superuser: what a Supabase user has), and
AIAS_SANDBOX_ADMIN_DATABASE_URL the platform's superuser supabase_admin (this module, scenario setup, faults).
Only the first is named in the profile's secrets, besides database-backup's two (platform/database/backups.py):
AIAS_SANDBOX_BACKUP_DATABASE_URL (the backup role aias_backup) and AIAS_SANDBOX_SCRATCH_DATABASE_URL (the same role
on the scratch database aias_scratch, which verify restores into).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from .. import paths
from ..errors import UsageError
from ..records import write_atomic
from . import processes, scenarios
from .emulators.hosted import server as hosted_services
from .emulators.stripe import launcher as stripe_launcher
from .emulators.stripe import seeding as billing
from .faults.base import Context
from .platform.database import backups as sandbox_backups
from .platform.database import migrations_folder as sandbox_migrations
from .platform.database import pooler as sandbox_pooler
from .platform.database import postgres, schema, statements, stats
from .traffic import visitors

DEFAULT_PORT_BASE = 54330          # api = base, localstripe = base + 1, postgres = base + 2, services = base + 3,
POOLER_PORT_OFFSET = 4             # PgBouncer (`--pooler`) = base + 4
MONITOR_ROLE = "aias_monitor"      # what runbooks diagnose through (migration 20250101000500_monitoring_role)
APP_ROLE = "aias_app"              # what the platform's API and workers use (migration 20250101000600_app_role)
LOGIN_ROLES = (MONITOR_ROLE, APP_ROLE)


def state_path() -> Path:
    return paths.sandbox_dir() / "state.json"


def read_state() -> dict[str, Any] | None:
    try:
        return json.loads(state_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(state: dict[str, Any]) -> None:
    write_atomic(state_path(), json.dumps(state, indent=2))


def component_alive(state: dict[str, Any], name: str) -> bool:
    return processes.alive(state.get("components", {}).get(name))


def is_up(state: dict[str, Any] | None) -> bool:
    """Postgres and localstripe running (the API may be down on purpose: scenario api-down)."""
    return bool(state) and all(component_alive(state, c) for c in ("postgres", "stripe"))


def port_base() -> int:
    value = os.environ.get("AIAS_SANDBOX_PORT_BASE", str(DEFAULT_PORT_BASE))
    if not value.isdigit() or not 1024 <= int(value) <= 65530:
        raise UsageError(f"AIAS_SANDBOX_PORT_BASE must be a port number 1024-65530, got {value!r}")
    return int(value)


def check_scale(scale: str | None) -> str | None:
    """None (keep the running sandbox's, or default) or a name in schema.SCALES."""
    if scale is not None and scale not in schema.SCALES:
        raise UsageError(f"unknown scale {scale!r}; valid: {', '.join(schema.SCALES)}")
    return scale


def check_pooler(pooler: str | None) -> str | None:
    """None (keep the running sandbox's, or none), 'none' (direct), or a PgBouncer pool mode."""
    valid = ("none", *sandbox_pooler.MODES)
    if pooler is not None and pooler not in valid:
        raise UsageError(f"unknown pooler {pooler!r}; valid: {', '.join(valid)}")
    return pooler


def up(scenario: str = "healthy", say: Callable[[str], None] = print, scale: str | None = None,
       pooler: str | None = None) -> dict[str, Any]:
    """Start the sandbox (or reuse the running one) and put it in the scenario.

    scale (schema.SCALES) is how much history `up` loads; None keeps a running sandbox's, or starts at default.
    A running sandbox keeps its scale: asking for another one is refused (bring it down first).
    pooler 'transaction' or 'session' puts PgBouncer in that mode in front of Postgres (the profile's
    database_url then goes through it), 'none' takes it away; None keeps what the running sandbox has."""
    wanted = scenarios.get(scenario)
    check_scale(scale)
    check_pooler(pooler)
    state = read_state()
    if is_up(state):
        running = state.get("scale", "default")
        if scale is not None and scale != running:
            raise UsageError(f"the sandbox in {paths.sandbox_dir()} is up at scale '{running}'; bring it down first "
                             f"(`aias-runbooks sandbox down`), then `sandbox up --scale {scale}`")
        say(f"sandbox already up in {paths.sandbox_dir()} (scale '{running}'); switching to scenario '{wanted.name}'")
        if pooler is not None:
            set_pooler(state, pooler, say)
        return apply_scenario(state, wanted.name, say)
    if state:
        say("found state from a sandbox that is no longer running; cleaning it up")
        down(say=lambda _: None)
    base = port_base()
    ports = {"api": base, "stripe": base + 1, "postgres": base + 2, "services": base + 3}
    for name, port in ports.items():
        if not processes.port_free(port):
            raise UsageError(f"port {port} (sandbox {name}) is in use by another program; stop it or set "
                             f"AIAS_SANDBOX_PORT_BASE to another base (uses base..base+3)")
    folder = paths.sandbox_dir()
    folder.mkdir(parents=True, exist_ok=True)
    state = {"folder": str(folder), "ports": ports, "components": {}, "scenario": None, "scale": scale or "default"}
    try:
        _start_all(state, say)
        if pooler not in (None, "none"):
            set_pooler(state, pooler, say)
    except BaseException:
        _write_state(state)
        down(say=lambda _: None)
        raise
    return apply_scenario(state, wanted.name, say)


def _start_all(state: dict[str, Any], say: Callable[[str], None]) -> None:
    """Postgres with schema and history, the sandbox.env the profile reads, localstripe, the app's traffic."""
    folder, ports = paths.sandbox_dir(), state["ports"]
    roles = (postgres.SUPERUSER, schema.PROJECT_ROLE, *LOGIN_ROLES)
    passwords = {role: secrets.token_urlsafe(18) for role in roles}   # URL-safe: they go in DSNs
    dsns = {role: f"postgresql://{role}:{pw}@127.0.0.1:{ports['postgres']}/postgres" for role, pw in passwords.items()}
    dsn = dsns[postgres.SUPERUSER]
    t0 = time.monotonic()
    scale = state.get("scale", "default")
    state["components"]["postgres"] = _start_postgres(folder, ports["postgres"], passwords[postgres.SUPERUSER],
                                                      schema.SHARED_BUFFERS[scale])
    _write_state(state)
    pg = state["components"]["postgres"]
    say(f"  postgres {pg['version']} ({pg['source']}) on 127.0.0.1:{pg['port']} [{time.monotonic() - t0:.1f}s]")
    t0 = time.monotonic()
    if pg["pg_stat_statements"]:
        schema.enable_pg_stat_statements(dsn)
    _, applied = schema.provision(dsn, passwords[schema.PROJECT_ROLE])
    schema.allow_login(dsn, {role: passwords[role] for role in LOGIN_ROLES})
    backup_urls = sandbox_backups.prepare(dsn, secrets.token_urlsafe(18))   # the backup role, the scratch database
    loading = time.monotonic()
    schema.seed(dsn, settings=schema.SCALES[scale])
    if scale == "large":
        schema.archive_tables(dsn)
        schema.settle(dsn)
    loaded = time.monotonic() - loading
    with psycopg.connect(dsn, autocommit=True) as conn:
        billing.write_seed(conn, folder)
    say(f"  schema: {len(applied)} migrations applied, history seeded [{time.monotonic() - t0:.1f}s]")
    if scale != "default":
        say(f"  scale '{scale}': {_describe_history(dsn)}; loaded in {loaded:.1f} s")
    _write_env_file(folder, {
        "AIAS_SANDBOX_API_URL": f"http://127.0.0.1:{ports['api']}",
        "AIAS_SANDBOX_STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
        "AIAS_SANDBOX_DATABASE_URL": dsns[MONITOR_ROLE],     # the profile's database_url: every runbook
        "AIAS_SANDBOX_ADMIN_DATABASE_URL": dsn,               # supabase_admin: control, scenario setup, faults
        # the project's own login, as a Supabase project's owner has it (not a superuser): the README's setup of the
        # monitoring role runs as this
        "AIAS_SANDBOX_POSTGRES_DATABASE_URL": dsns[schema.PROJECT_ROLE],
        # migrations' guarded apply: the backup role (never the bootstrap superuser's URL in a profile), acting as
        # the schemas' owner, so what it creates is owned as the Supabase CLI's `postgres` would own it
        "AIAS_SANDBOX_MIGRATIONS_DATABASE_URL": backup_urls["AIAS_SANDBOX_BACKUP_DATABASE_URL"]
        + "?options=-c%20role%3Dpostgres",
        "AIAS_SANDBOX_APP_DATABASE_URL": dsns[APP_ROLE],      # the sandbox API and the application's workloads
        "AIAS_SANDBOX_STRIPE_SECRET_KEY": "sk_test_" + secrets.token_hex(16),
        "AIAS_SANDBOX_STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
        "AIAS_SANDBOX_ADMIN_TOKEN": secrets.token_urlsafe(24),       # /api/billing/reconcile's bearer token
        "AIAS_SANDBOX_SERVICES_URL": f"http://127.0.0.1:{ports['services']}",   # Vercel, Resend, Auth, status pages
        "AIAS_SANDBOX_VERCEL_TOKEN": secrets.token_urlsafe(24),
        "AIAS_SANDBOX_RESEND_API_KEY": "re_" + secrets.token_urlsafe(24),
        "AIAS_SANDBOX_SUPABASE_ANON_KEY": secrets.token_urlsafe(32),
        # the schedules' Slack notifications: the services' incoming webhook, its token in the path as Slack's
        "AIAS_SANDBOX_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{ports['services']}/slack/services/TSANDBOX/BSANDBOX/"
        + secrets.token_hex(12),
        # paging out (notify's pagerduty channel): an Events API v2 integration's routing key (32 characters, as
        # PagerDuty's), and a REST API token for the incident notes `serve` posts back
        "AIAS_SANDBOX_PAGERDUTY_ROUTING_KEY": secrets.token_hex(16),
        "AIAS_SANDBOX_PAGERDUTY_API_TOKEN": secrets.token_urlsafe(15),
        # alerts in (`serve`): each sender's credential, as the README's receivers configure them
        "AIAS_SANDBOX_ALERTMANAGER_TOKEN": secrets.token_urlsafe(24),     # Alertmanager http_config.authorization
        "AIAS_SANDBOX_GRAFANA_WEBHOOK_SECRET": secrets.token_urlsafe(24), # Grafana's webhook HMAC signature
        "AIAS_SANDBOX_PAGERDUTY_WEBHOOK_SECRET": secrets.token_urlsafe(24),  # v3 webhook subscription's secret
        **backup_urls,   # database-backup: AIAS_SANDBOX_BACKUP_DATABASE_URL, AIAS_SANDBOX_SCRATCH_DATABASE_URL
    })
    t0 = time.monotonic()
    _start_services(state)
    say(f"  hosted services (Vercel, Resend, Supabase Auth, status pages) on 127.0.0.1:{ports['services']} "
        f"[{time.monotonic() - t0:.1f}s]")
    t0 = time.monotonic()
    stripe_launcher.start(state, lambda: _write_state(state))
    say(f"  localstripe on 127.0.0.1:{ports['stripe']}, seeded with the database's subscriptions "
        f"[{time.monotonic() - t0:.1f}s]")
    state["components"]["traffic"] = processes.start_ready(folder, "traffic", "aias_runbooks.sandbox.traffic.reads",
                                                          env=processes.component_env(folder))
    state["components"]["worker"] = processes.start_ready(folder, "worker", "aias_runbooks.sandbox.platform.worker",
                                                         env=processes.component_env(folder))
    _write_state(state)
    _warm(folder, scale)
    with postgres.admin_connection(folder) as conn:   # statistics describe the running platform, not the bulk load
        conn.execute(stats.STATS_RESET_SQL)
        _fill_statements(state, conn, say)
    say("  application traffic: a few dozen index-backed reads a second (application_name aias-api); "
        "the workflow worker runs an execution every 2 s (aias-worker); visitors send the API about "
        f"{visitors.VISITS_PER_MINUTE} requests a minute once it is up")


def set_pooler(state: dict[str, Any], mode: str, say: Callable[[str], None] = print,
               settings: dict[str, str] | None = None) -> None:
    """PgBouncer in `mode` in front of Postgres, the profile's database_url through it; 'none': direct again.

    `settings` adds PgBouncer settings (tests: `ignore_startup_parameters`). Only the monitoring role's URL moves:
    the application's sessions (and the faults that hold them) stay direct, as the platform's own would."""
    folder = Path(state["folder"])
    sandbox_pooler.stop(state["components"].pop("pooler", None))
    pg_port = state["ports"]["postgres"]
    port = state["ports"].setdefault("pooler", state["ports"]["api"] + POOLER_PORT_OFFSET)
    if mode != "none":
        if not processes.port_free(port):
            raise UsageError(f"port {port} (sandbox pooler) is in use by another program; stop it or set "
                             "AIAS_SANDBOX_PORT_BASE to another base (with --pooler, uses base..base+4)")
        state["components"]["pooler"] = sandbox_pooler.start(
            folder, port, pg_port, mode, processes.sandbox_env(folder)["AIAS_SANDBOX_ADMIN_DATABASE_URL"], LOGIN_ROLES,
            settings)
    _write_state(state)
    env = processes.sandbox_env(folder)
    direct = sandbox_pooler.via(env["AIAS_SANDBOX_DATABASE_URL"], port, pg_port)
    env["AIAS_SANDBOX_DATABASE_URL"] = direct if mode == "none" else sandbox_pooler.via(direct, pg_port, port)
    _write_env_file(folder, env)
    say(f"  database_url: direct to Postgres on 127.0.0.1:{pg_port}" if mode == "none" else
        f"  PgBouncer ({mode} mode) on 127.0.0.1:{port} in front of Postgres: the profile's database_url goes "
        "through it")


def _describe_history(dsn: str) -> str:
    """The large scale's row counts, as the planner estimates them (exact counts would scan 10 M rows)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        counts = dict(conn.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class c WHERE c.oid IN ('public.api_requests'::regclass,"
            " 'public.error_logs'::regclass, 'public.workflow_executions'::regclass, 'auth.users'::regclass,"
            " 'public.tenants'::regclass)").fetchall())
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'archive'").fetchone()[0]
    return (f"{counts['api_requests']:,} api_requests, {counts['error_logs']:,} error_logs, "
            f"{counts['workflow_executions']:,} workflow_executions, {counts['users']:,} users, "
            f"{counts['tenants']:,} tenants, {tables:,} archive tables")


def _fill_statements(state: dict[str, Any], conn: psycopg.Connection, say: Callable[[str], None]) -> None:
    """At scale large, after a statistics reset: pg_stat_statements holds thousands of statements again."""
    t0 = time.monotonic()
    count = statements.refill(state, conn)
    if count is not None:
        say(f"  pg_stat_statements: {count:,} distinct statements [{time.monotonic() - t0:.1f}s]")


def _warm(folder: Path, scale: str) -> None:
    """Before the statistics reset, bring into memory what a running platform has there and the bulk load evicted:
    the indexes (stats.warm) and the catalogs a login of each role reads."""
    env = processes.sandbox_env(folder)
    with postgres.admin_connection(folder) as conn:
        stats.warm(conn, scale)
        conn.execute(stats.FLUSH_STATS_SQL)
        conn.execute("SELECT 1")      # the flush happens as the session goes idle: before this answer comes back
    for var in ("AIAS_SANDBOX_DATABASE_URL", "AIAS_SANDBOX_APP_DATABASE_URL"):
        with psycopg.connect(env[var], application_name="aias-sandbox/control", autocommit=True) as conn:
            conn.execute(stats.FLUSH_STATS_SQL)
            conn.execute("SELECT 1")


def _start_postgres(folder: Path, port: int, password: str, shared_buffers: str = "128MB") -> dict[str, Any]:
    binaries = postgres.find_binaries()
    data_dir = folder / "pgdata"
    postgres.init(binaries, data_dir, password)
    postgres.configure(binaries, data_dir, port, shared_buffers=shared_buffers)
    pid = postgres.start(binaries, data_dir, folder / "logs" / "postgres.log")
    return processes.record_of(pid) | {
        "port": port, "data_dir": str(data_dir), "bindir": str(binaries.bindir), "version": binaries.version,
        "source": binaries.source, "pg_stat_statements": binaries.has_pg_stat_statements}


def _write_env_file(folder: Path, values: dict[str, str]) -> None:
    """sandbox.env, readable by its owner only: it holds the sandbox's generated secrets."""
    path = folder / "sandbox.env"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def _start_services(state: dict[str, Any]) -> None:
    """The hosted services' emulator (emulators/hosted/server.py), seeded healthy."""
    folder, port = Path(state["folder"]), state["ports"]["services"]
    hosted_services.seed(folder)
    record = processes.spawn([sys.executable, "-m", "aias_runbooks.sandbox.emulators.hosted.server", "--port",
                              str(port), "--state-dir", str(folder)], folder / "logs" / "services.log",
                             env=processes.component_env(folder))
    processes.wait_until(lambda: processes.http_ok(f"http://127.0.0.1:{port}/ready"), record, "hosted services")
    state["components"]["services"] = record | {"port": port, "url": f"http://127.0.0.1:{port}"}
    _write_state(state)


def _start_api(state: dict[str, Any]) -> dict[str, Any]:
    folder, port = Path(state["folder"]), state["ports"]["api"]
    env = processes.component_env(folder)
    record = processes.spawn([sys.executable, "-m", "aias_runbooks.sandbox.platform.api.app", "--port", str(port),
                              "--state-dir", str(folder)], folder / "logs" / "api.log", env=env)
    processes.wait_until(lambda: _api_ready(folder, port), record, "sandbox API")
    return record | {"port": port, "url": f"http://127.0.0.1:{port}"}


def _api_ready(folder: Path, port: int) -> bool:
    """/api/healthz says ok; under api-db-down (its database check hangs on purpose) listening is enough."""
    if processes.http_ok(f"http://127.0.0.1:{port}/api/healthz"):
        return True
    try:
        db_down = json.loads((folder / "scenario.json").read_text()).get("api") == "db-down"
    except (OSError, ValueError):
        return False
    return db_down and not processes.port_free(port)


def apply_scenario(state: dict[str, Any], name: str, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Reset the previous scenario's faults, bring the platform's own parts back as `up` left them, then make this
    scenario's faults (scenarios.py: each a faults/ module behind make/reset)."""
    wanted = scenarios.get(name)
    ctx = Context(state, lambda: _write_state(state), say)
    previous = scenarios.SCENARIOS.get(state.get("scenario") or "healthy")
    for fault in previous.faults if previous else ():
        fault.reset(ctx)
    _run_platform(state, wanted)
    state["scenario"], state["scenario_since"] = wanted.name, time.time()
    _write_state(state)
    if state.get("scale", "default") == "default":   # at scale large a dump takes minutes: `create=true` does it
        sandbox_backups.ensure_fresh(say)              # healthy has a fresh backup (at `up`, again after an hour)
    for fault in wanted.faults:
        fault.make(ctx)
    _write_state(state)
    say(f"sandbox up in {ctx.folder}: scenario '{wanted.name}': {wanted.description}")
    return state


def _run_platform(state: dict[str, Any], wanted: scenarios.Scenario) -> None:
    """The migrations folder as `up` applied it, the API's modes for the scenario (scenario.json), and the API,
    the worker and the visitors running (the visitors after the API: they visit it at once)."""
    folder = Path(state["folder"])
    sandbox_migrations.sync(folder)
    (folder / "scenario.json").write_text(json.dumps(wanted.switches()))
    if not processes.alive(state["components"].get("api")):
        state["components"]["api"] = _start_api(state)
    for name, module in (("worker", "platform.worker"), ("visitors", "traffic.visitors")):
        if not processes.alive(state["components"].get(name)):
            state["components"][name] = processes.start_ready(folder, name, f"aias_runbooks.sandbox.{module}",
                                                              env=processes.component_env(folder))
    _write_state(state)


def down(say: Callable[[str], None] = print) -> bool:
    """Stop exactly what `up` started; False if nothing was running."""
    state = read_state()
    if not state:
        say("sandbox is not up (no state file)")
        return False
    stopped = []
    components = state.get("components", {})
    for name in ("fault", "visitors", "worker", "traffic", "api", "stripe", "services", "pooler"):
        if processes.stop(components.get(name)):
            stopped.append(name)
    pg = components.get("postgres")
    if pg and processes.alive(pg) and postgres.stop(Path(pg["bindir"]), Path(pg["data_dir"])):
        stopped.append("postgres")
    state_path().unlink(missing_ok=True)
    (Path(state["folder"]) / "sandbox.env").unlink(missing_ok=True)
    say(f"sandbox down: stopped {', '.join(stopped) or 'nothing (already stopped)'}")
    return bool(stopped)


def status() -> list[dict[str, Any]]:
    """One row per component: whether it runs and where."""
    state = read_state() or {}
    rows = []
    for name in ("postgres", "pooler", "api", "stripe", "services", "traffic", "worker", "visitors"):
        record = state.get("components", {}).get(name, {})
        port = state.get("ports", {}).get(name)
        rows.append({"component": name, "running": processes.alive(record), "port": port,
                     "detail": _detail(name, record)})
    return rows


def _detail(name: str, record: dict[str, Any]) -> str:
    if name == "postgres" and record:
        pgss = "pg_stat_statements" if record.get("pg_stat_statements") else "no pg_stat_statements"
        return f"PostgreSQL {record.get('version')} ({record.get('source')}, {pgss})"
    if name == "pooler" and record:
        return f"PgBouncer, {record.get('mode')} mode: the profile's database_url goes through it"
    if name == "traffic" and record:
        return "application reads (traffic/reads.py)"
    if name == "worker" and record:
        return "workflow worker: schedules and runs executions (platform/worker.py)"
    if name == "visitors" and record:
        return "the platform's users over HTTP: logins, runs, signups, billing updates (traffic/visitors.py)"
    if name == "services" and record:
        return f"Vercel, Resend, Supabase Auth, status pages ({record.get('url')})"
    return record.get("url", "") if record else ""
