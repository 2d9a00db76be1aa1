"""`aias-runbooks doctor --env NAME`: is this environment ready for the runbooks? (the playbook's validate-env)

One line per check, status word first: the secrets the profile names are set and well formed, every target
answers (database, API, Stripe, each `urls:` entry; all asked at once, each bounded), and the database role is
what the runbooks expect: the predefined roles they read through, not a superuser, and a diagnosis session that is
read-only. The exit code is the worst status's, as for a runbook (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). No
line ever holds a secret: details name variables, never values, and every line is redacted before it is shown.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from .dsn import split_url
from .findings import Severity, worst
from .runner.redact import redact_text, secret_values
from .settings import Environment, Secret, load_environment
from .sources import http
from .sources.subsystems import at_once

TIMEOUT_S = 5.0
# Predefined roles the diagnosis queries read through (pg_monitor holds both); pg_signal_backend only for actions.
READ_ROLES = ("pg_read_all_stats", "pg_read_all_settings")
# Every table the queries in aias_runbooks/sql/ read (docs/security.md, "The monitoring role").
TABLES = ["public.api_requests", "public.error_logs", "public.plan_limits", "public.profiles", "public.rate_limits",
          "public.stripe_events", "public.subscription_tiers", "public.tenants", "public.worker_heartbeats",
          "public.workflow_executions", "public.workflows", "supabase_migrations.schema_migrations"]
# Supabase Auth's tables, as the monitor reads them (docs/security.md: the monitoring role's setup creates these
# views as postgres)
AUTH_VIEWS = ["aias_runbooks.auth_audit_log_entries", "aias_runbooks.auth_refresh_tokens",
              "aias_runbooks.auth_sessions", "aias_runbooks.auth_users"]
# What each secret must look like; a role not listed must only be one printable word (it travels in a header).
SHAPES = {
    "stripe_secret_key": (re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]+"), "a Stripe secret or restricted key "
                          "(sk_... or rk_...)"),
    "stripe_webhook_secret": (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "a webhook signing secret (whsec_...)"),
    "resend_api_key": (re.compile(r"re_[A-Za-z0-9_-]+"), "a Resend API key (re_...)"),
}
OPTIONAL = {"admin_token": "only the guarded reconcile, rate-limit and retry actions use it",
            "migrations_database_url": "only the migrations runbook's guarded apply uses it"}


@dataclass(frozen=True)
class Check:
    severity: Severity
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.severity.value:<8} {self.name:<24} {self.detail}"


def diagnose(env_name: str, timeout_s: float = TIMEOUT_S) -> list[Check]:
    """Every check of the profile, in a fixed order; UsageError (before anything is checked) for an unknown
    profile, or a sandbox profile whose sandbox is not running."""
    env = load_environment(env_name)
    if env.is_sandbox:
        env.check_ready()
    checks = [secret_check(env, role) for role in env.secret_vars]
    targets = {"api": ("API", env.api_base_url, lambda: _api(env.api_base_url, timeout_s))}
    targets["stripe"] = ("Stripe API", env.stripe_api_base or "https://api.stripe.com",
                         lambda: _stripe(env, timeout_s))
    for name, url in env.urls.items():   # a status page where the runbooks read it, any other base at its root
        path = "/api/v2/summary.json" if name.startswith("status_") else ""
        targets[f"url:{name}"] = (f"url {name}", url, lambda url=url, path=path: _answers(url, timeout_s, path))
    calls: dict[str, Callable[[], list[Check]]] = {"database": lambda: database_checks(env, timeout_s)}
    ahead: dict[str, Check] = {}
    for key, (name, url, call) in targets.items():
        if problem := url_problem(url):
            ahead[key] = Check(Severity.CRITICAL, name, problem)
        else:
            calls[key] = lambda name=name, call=call: [_named(name, call)]
    answered, _ = at_once(calls, deadline_s=2 * timeout_s + 2)
    for key in ["database", *targets]:
        if key in ahead:
            checks.append(ahead[key])
        elif answered[key].result is not None:
            checks += answered[key].result
        else:
            name = "database" if key == "database" else targets[key][0]
            checks.append(Check(Severity.CRITICAL, name, answered[key].error or "no answer"))
    return checks


def report(checks: list[Check], env_name: str) -> tuple[list[str], int]:
    """(the lines to print, redacted of every secret of the profile, the exit code); the last line sums up."""
    status = worst(checks)   # type: ignore[arg-type] - a Check has the severity worst() ranks
    counts = {s: sum(c.severity is s for c in checks) for s in Severity}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    lines = [c.line() for c in checks]
    lines.append(Check(status, "summary", f"environment '{env_name}': {len(checks)} checks ({summary})").line())
    profile = load_environment(env_name)
    secrets = secret_values(s.reveal() for s in profile.secrets().values())
    return [redact_text(line, secrets)[0] for line in lines], status.exit_code


def secret_check(env: Environment, role: str) -> Check:
    """Set and well formed: the database URL parses, keys have their provider's shape. Names the variable."""
    var = env.secret_vars[role]
    secret = env.secret(role)
    if secret is None:
        if role in OPTIONAL:
            return Check(Severity.WARNING, role, f"{var} is not set ({OPTIONAL[role]})")
        return Check(Severity.CRITICAL, role, f"{var} is not set: {env.missing_secret_message(role)}")
    value = secret.reveal()
    if role.endswith("database_url"):
        return _dsn_check(role, secret)
    if role in SHAPES:
        pattern, what = SHAPES[role]
        if not pattern.fullmatch(value):
            return Check(Severity.CRITICAL, role, f"{var} is set but is not {what}")
        mode = " (live mode)" if "_live_" in value else " (test mode)" if "_test_" in value else ""
        return Check(Severity.OK, role, f"{var} is set and looks like {what}{mode}")
    if not value.isprintable() or any(c.isspace() for c in value) or not value.isascii():
        return Check(Severity.CRITICAL, role, f"{var} is set but holds spaces or characters an HTTP header cannot "
                     "carry")
    return Check(Severity.OK, role, f"{var} is set ({len(value)} characters)")


def _dsn_check(role: str, secret: Secret) -> Check:
    try:
        parts = split_url(secret.reveal())
    except ValueError as exc:          # the message never quotes the URL
        return Check(Severity.CRITICAL, role, f"{secret.name} does not parse: {exc}")
    missing = [what for what, value in (("user", parts.username), ("host", parts.host)) if not value]
    if not parts.scheme.startswith("postgres") or missing:
        why = f"no {' or '.join(missing)}" if missing else f"scheme '{parts.scheme}' is not postgresql"
        return Check(Severity.CRITICAL, role, f"{secret.name} is not a usable connection URL: {why}")
    where = f"{parts.host}:{parts.port or 5432}/{parts.database or parts.username}"
    return Check(Severity.OK, role, f"{secret.name} parses: user {parts.username} at {where}")


def url_problem(url: str) -> str | None:
    """Why url is not an http(s) URL with a host (None when it is); never fetched."""
    if not url:
        return "not set in the profile"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"is not an http(s) URL with a host ({_shown(url)})"
    return None


def _shown(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."


def _named(name: str, call: Callable[[], tuple[Severity, str]]) -> Check:
    severity, detail = call()
    return Check(severity, name, detail)


def _answers(url: str, timeout_s: float, path: str = "") -> tuple[Severity, str]:
    """Any HTTP answer is reachable; a 5xx is a WARNING (it answers, but is failing); no answer is CRITICAL."""
    start = time.perf_counter()
    try:
        response = http.request("GET", url + path, timeout_s)
    except http.TooSlow as exc:
        return Severity.CRITICAL, f"{url}{path}: {exc.reason}"
    except http.NoAnswer as exc:
        return Severity.CRITICAL, f"{url}{path}: no answer ({exc.reason}; deadline {timeout_s:g} s)"
    except http.NotSent as exc:
        return Severity.CRITICAL, f"{url}{path}: the request could not be made ({exc.kind})"
    took = (time.perf_counter() - start) * 1000
    if response.status_code >= 500:
        return Severity.WARNING, f"{url}{path} answers HTTP {response.status_code} in {took:.0f} ms (failing)"
    return Severity.OK, f"{url}{path} reachable: HTTP {response.status_code} in {took:.0f} ms"


def _api(base: str, timeout_s: float) -> tuple[Severity, str]:
    severity, detail = _answers(base, timeout_s, "/api/healthz")
    if severity is Severity.WARNING:
        detail += ": run health-check"
    return severity, detail


def _stripe(env: Environment, timeout_s: float) -> tuple[Severity, str]:
    """With a well-formed key, one authenticated read (the key is accepted); without one, just reachability."""
    base = env.stripe_api_base or "https://api.stripe.com"
    key = env.secret("stripe_secret_key")
    if key is None or not SHAPES["stripe_secret_key"][0].fullmatch(key.reveal()):
        severity, detail = _answers(base, timeout_s)
        return severity, detail + " (key not tried: see stripe_secret_key)"
    from .sources.stripe import StripeClient, StripeUnavailable
    try:
        ping = StripeClient(key.reveal(), base, timeout_s).ping()
    except StripeUnavailable as exc:
        return Severity.CRITICAL, f"{base}: {exc}"
    return Severity.OK, f"{base} answers and accepts the key in {ping['latency_ms']:.0f} ms"


def database_checks(env: Environment, timeout_s: float) -> list[Check]:
    """Through a session opened exactly as a runbook opens one (sources.database.connect): reachable, the role
    not a superuser, its predefined roles and table reads, and the session read-only."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

    from .sources import database
    names = ["database role", "database grants", "grant for actions", "table reads", "auth reads", "write paths",
             "read-only session", "connection route"]
    dsn = env.secret("database_url")
    if dsn is None:
        return [Check(Severity.UNKNOWN, "database", "not checked: no database_url")]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    start = time.perf_counter()
    try:
        engine = database.connect(dsn, f"aias-runbooks/doctor/{stamp}", connect_timeout_s=max(2, math.ceil(timeout_s)))
    except ArgumentError:
        return [Check(Severity.UNKNOWN, "database", "not checked: database_url does not parse")]
    target = f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database or ''}"
    try:
        with engine.connect() as conn, database.answer_within(conn, timeout_s):
            role = database.query(conn, "role_readiness").iloc[0]
            tables = database.query(conn, "table_reads", tables=TABLES)
            auth = database.query(conn, "auth_reads", views=AUTH_VIEWS)
            writes = database.query(conn, "write_paths")
            route = _route(dsn, conn, timeout_s)
    except (DBAPIError, SQLAlchemyError) as exc:
        found, message = _refusal(exc, engine)
        if isinstance(exc, database.GuardMissing):
            return _unguarded(target, str(exc), names)
        if found.code == "DB_GUARD_MISSING":   # a statement-mode pooler: it refused the transaction and hung up
            return _unguarded(target, f"no guarantee holds: {found.title} ({message}) {found.next_steps[0]}", names)
        return [_unreached(found, message),
                *(Check(Severity.UNKNOWN, n, "not checked: no database session") for n in names)]
    finally:
        engine.dispose()
    took = (time.perf_counter() - start) * 1000
    return [Check(Severity.OK, "database", f"{target} answers as {role['role']} (PostgreSQL "
                  f"{role['server_version'].split()[0]}) in {took:.0f} ms"),
            _role(role), _grants(role), _signal(role), _tables(tables), _auth_reads(auth), _write_paths(role, writes),
            _read_only(role), route]


POOLER_LIMITS = {
    "transaction pooler": "session-level settings do not last past a transaction, advisory locks are not held "
                          "between transactions, and a pid is a pooled server session: one idle between transactions "
                          "serves whichever client comes next (terminating it ends that client's statement); one idle "
                          "in transaction belongs to its client until the transaction ends",
    "session pooler": "a pid is the pooler's server session for one client: terminating it ends that client's "
                      "connection through the pooler; the server sees the pooler's address, not the application's",
}


def _route(dsn: Secret, conn, timeout_s: float) -> Check:
    """Direct, session pooler or transaction pooler, decided from what the server sees.

    A pooler in between: the server's view of this session's client port is not the local port of our socket
    (PgBouncer, Supavisor, any proxy: the server's client is the pooler). Transaction mode: a second client,
    opened while the first is idle between transactions, is served by the same server session (pg_backend_pid);
    a session pooler keeps that session for the first client. Port 6543 is Supabase's transaction pooler."""
    from .sources import database
    first = database.query(conn, "connection_route").iloc[0]
    pooled = int(first["client_port"] if first["client_port"] is not None else -1) != _local_port(conn)
    second = database.connect(dsn, "aias-runbooks/doctor/route", connect_timeout_s=max(2, math.ceil(timeout_s)))
    try:
        with second.connect() as other, database.answer_within(other, timeout_s):
            same_session = int(database.query(other, "connection_route").iloc[0]["pid"]) == int(first["pid"])
    finally:
        second.dispose()
    port = split_url(dsn.reveal()).port
    if same_session or port == 6543:
        kind = "transaction pooler"
        how = "a second client was served by the same server session" if same_session else "port 6543"
    elif pooled:
        kind, how = "session pooler", "the server sees another client port than ours; each client keeps its session"
    else:
        return Check(Severity.OK, "connection route", "direct to the server (it sees our own client port): every "
                     "feature works; the runbooks' guarantees are set in each transaction")
    return Check(Severity.OK, "connection route", f"through a {kind} ({how}): the runbooks' guarantees are set in "
                 f"each transaction and hold; what does not work through it: {POOLER_LIMITS[kind]}")


def _local_port(conn) -> int:
    """The local TCP port of the connection's socket (-1 when not TCP)."""
    import os
    import socket
    try:
        with socket.socket(fileno=os.dup(conn.connection.dbapi_connection.pgconn.socket)) as sock:
            name = sock.getsockname()
    except OSError:
        return -1
    return int(name[1]) if isinstance(name, tuple) else -1


def _refusal(exc: Exception, engine) -> tuple:
    """(finding, server's first line): the server could not be reached, or it answered and refused, the cause
    named as a runbook names it (checks.connections.unreachable: a refused startup parameter, login or database, a
    full pooler, a pooler that refuses the guarded transaction)."""
    from .checks import connections
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    message = lines[0] if lines else str(exc)
    target = f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database or ''}"
    return connections.unreachable(message, target, engine.url.username or "",
                                   getattr(getattr(exc, "orig", None), "sqlstate", None)), message


def _unreached(found, message: str) -> Check:
    """CRITICAL when the server could not be reached; else the refusal's own finding code and cause."""
    if found.code == "DB_UNREACHABLE":
        return Check(Severity.CRITICAL, "database", f"cannot be reached: {message}")
    return Check(found.severity, "database", f"{found.code}: {found.title} ({message})")


def _unguarded(target: str, why: str, names: list[str]) -> list[Check]:
    """The server answered, but a runbook's transaction cannot have every guarantee: the read-only line says which
    and how to get it; no other database check runs (none may run unguarded)."""
    return [Check(Severity.OK, "database", f"{target} answers (the connection was accepted)"),
            *(Check(Severity.CRITICAL, n, f"not every guarantee holds, so no runbook query runs: {why}")
              if n == "read-only session" else
              Check(Severity.UNKNOWN, n, "not checked: no guarded session (see read-only session)") for n in names)]


def _role(role) -> Check:
    if role["superuser"]:
        return Check(Severity.WARNING, "database role", f"{role['role']} is a superuser: a session that turned "
                     "read-only off could change anything; connect as a monitoring role (docs/security.md: The "
                     "monitoring role)")
    rls = "; it bypasses row level security" if role["bypass_rls"] else ""
    return Check(Severity.OK, "database role", f"{role['role']} is not a superuser{rls}")


def _grants(role) -> Check:
    missing = [name for name in READ_ROLES if not role[name]]
    via = " (through pg_monitor)" if role["pg_monitor"] else ""
    if role["superuser"]:
        return Check(Severity.OK, "database grants", "a superuser reads every statistic and setting")
    if missing:
        return Check(Severity.WARNING, "database grants", f"{role['role']} lacks {', '.join(missing)} (or "
                     "pg_monitor): other sessions' queries and superuser-only settings are hidden from the runbooks")
    return Check(Severity.OK, "database grants", f"{' and '.join(READ_ROLES)}{via}")


def _signal(role) -> Check:
    if role["pg_signal_backend"]:
        return Check(Severity.OK, "grant for actions", "pg_signal_backend: the guarded terminate action can end "
                     "leaked sessions")
    return Check(Severity.OK, "grant for actions", "pg_signal_backend not granted: needed only for the guarded "
                 "terminate action (database-connection-errors apply=true)")


def _tables(tables) -> Check:
    absent = tables.loc[~tables["present"], "table_name"].tolist()
    refused = tables.loc[tables["present"] & ~tables["can_select"], "table_name"].tolist()
    if refused or absent:
        said = "; ".join(part for part in (f"no SELECT on {', '.join(refused)}" if refused else "",
                                           f"absent: {', '.join(absent)}" if absent else "") if part)
        return Check(Severity.WARNING, "table reads", f"{said}: the runbooks reading them report DB_QUERY_FAILED")
    return Check(Severity.OK, "table reads", f"SELECT on all {len(tables)} tables the runbooks read")


def _auth_reads(views) -> Check:
    """Supabase Auth enables row level security on its tables and no project role may add a policy there: the
    monitor reads them through views owned by a role that bypasses RLS (postgres), or it sees no login at all."""
    absent = views.loc[~views["present"], "view_name"].tolist()
    refused = views.loc[views["present"] & ~views["can_select"], "view_name"].tolist()
    blind = views.loc[views["present"] & ~views["owner_bypasses_rls"]]
    if absent or refused:
        said = "; ".join(part for part in (f"absent: {', '.join(absent)}" if absent else "",
                                           f"no SELECT on {', '.join(refused)}" if refused else "") if part)
        return Check(Severity.WARNING, "auth reads", f"{said}: incident-data-breach and user-support report "
                     "DB_QUERY_FAILED; create them as postgres (docs/security.md: The monitoring role)")
    if not blind.empty:
        owners = ", ".join(f"{v} (owner {o})" for v, o in zip(blind["view_name"], blind["owner"], strict=True))
        return Check(Severity.WARNING, "auth reads", f"{owners}: the owner does not bypass row level security, which "
                     "Supabase Auth enables on its tables, so these read no rows; recreate them as postgres")
    return Check(Severity.OK, "auth reads", f"Supabase Auth's tables through {len(views)} views owned by a role that "
                 "bypasses their row level security (only the columns the runbooks need)")


def _write_paths(role, writes) -> Check:
    """Read-only must hold even when a session turns it off: the login reaches no table it could change (itself or
    through SET ROLE), no schema it could create in, no VOLATILE definer function (which runs with its owner's rights
    and may write)."""
    if role["superuser"]:
        return Check(Severity.WARNING, "write paths", "a superuser can write anything")
    if writes.empty:
        return Check(Severity.OK, "write paths", f"{role['role']} can write nothing, whatever a session sets: no "
                     "writable table through any role it may switch to, no schema to create in, no volatile definer "
                     "function")
    shown = "; ".join(writes["path"].head(5)) + ("; ..." if len(writes) > 5 else "")
    return Check(Severity.WARNING, "write paths", f"{role['role']} could write if a session turned read-only off "
                 f"({len(writes)} paths: {shown}): revoke them (docs/security.md: The monitoring role)")


def _read_only(role) -> Check:
    """Whether every guarantee holds (read-only, statement_timeout, lock_timeout), as read back inside a runbook's
    guarded transaction (sources.database.begin_guarded: BEGIN READ ONLY, SET LOCAL timeouts, which a pooler cannot
    drop, checked there before any query runs); the role's own default is shown besides. A guarantee that cannot
    be had never gets here: begin_guarded refuses the transaction (GuardMissing, database_checks)."""
    settings = (f"transaction_read_only={role['transaction_read_only']}, statement_timeout="
                f"{role['statement_timeout']}, lock_timeout={role['lock_timeout']} in each transaction; role default "
                f"default_transaction_read_only={role['default_transaction_read_only']}")
    if role["transaction_read_only"] != "on":
        return Check(Severity.CRITICAL, "read-only session", f"a runbook session is NOT read-only: {settings}")
    return Check(Severity.OK, "read-only session", f"every guarantee holds, read back inside a runbook's "
                 f"transaction ({settings})")
