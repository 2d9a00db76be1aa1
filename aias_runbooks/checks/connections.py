"""Database Connection Errors: reachability, pool usage, leaks, long-running queries, blocking, slow queries."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from ..sources import statements
from ..thresholds import grade
from .latency import p95

REFUSED_FOR_SLOTS = ("too many clients", "remaining connection slots are reserved", "too many connections")
POOL_STEPS = [
    "See which application holds the connections (table above) and whether they are idle or idle in transaction.",
    "Use the Supabase pooler (transaction mode) for serverless functions; increase the pool size only after.",
    "Check if Supabase is down (status page) before changing anything.",
]
POOL_LEAK_STEP = ("Leaked sessions hold part of the pool (next section): terminate them with this runbook's guarded "
                  "action (apply=true, operator=<you>), then fix the code path.")
POOL_NO_LEAK_STEP = ("No session is idle in transaction past the leak criterion: the slots are held by working or "
                     "idle connections, so shrink the clients' pools or move them to the pooler; terminating "
                     "sessions would not help.")
POOL_LEAK_UNKNOWN_STEP = "The leak check did not run (next section): look for sessions idle in transaction by hand."
REFUSED_STEPS = [
    "Restart or scale down what holds them (usually the API's connection pool); ending sessions needs a slot too.",
    "Use the Supabase pooler (transaction mode) for serverless functions; increase the pool size only after.",
    "Check if Supabase is down (status page).",
]
# PostgreSQL 16 added reserved_connections: slots kept for roles with the privileges of this predefined role.
RESERVED_ROLE, RESERVED_ROLE_SINCE = "pg_use_reserved_connections", 160000
# What a refusal for lack of slots says: (words of the server's message, the slots still free, the server version
# that message implies). No match (e.g. "too many clients already"): every slot is taken, reserved ones too.
REFUSALS = [
    (f'"{RESERVED_ROLE}" role', f"those reserved for superusers and for roles granted {RESERVED_ROLE}", "16 or later"),
    ("SUPERUSER attribute", "those reserved for superusers", "16 or later"),
    ("non-replication superuser", "those reserved for superusers", "15 or older"),
]
LEAK_STEPS = [
    "Find the code path that opens a transaction and does not commit or roll back (the last_query shows where).",
    "Terminate the leaked sessions with this runbook's guarded action (dry run first; apply=true, operator=<you>).",
    "Set idle_in_transaction_session_timeout for the application role so the server ends such leaks itself.",
]


# A server (or pooler) that answered and refused: (code, severity, SQLSTATEs, message markers, what it means, steps).
# PgBouncer reports its own refusals as SQLSTATE 08P01, so its message words are matched too.
REFUSED_CONNECTIONS = [
    ("DB_STARTUP_PARAMETER_REFUSED", Severity.UNKNOWN, (), ("unsupported startup parameter",),
     "a pooler in front of it refuses a startup parameter of the connection",
     ["Add the parameter to the pooler's ignore_startup_parameters, or connect directly or through the session "
      "pooler; the runbooks need no startup parameter but application_name."]),
    ("DB_LOGIN_REFUSED", Severity.UNKNOWN, ("28P01", "28000"),
     ("password authentication failed", "SASL authentication failed", "no pg_hba.conf entry", "not allowed to log in",
      "authentication failed"),
     "it refuses the login: wrong user or password, or the role may not log in from here",
     ["Check the user and password of the profile's database_url (on the Supabase pooler the user is "
      "<role>.<project-ref>), and that the role has LOGIN.", "If the password was rotated, update the secret."]),
    ("DB_UNKNOWN_DATABASE", Severity.UNKNOWN, ("3D000",), ("no such database", "does not exist"),
     "the database named in the connection string does not exist there",
     ["Check the database name at the end of the profile's database_url (Supabase: postgres)."]),
    ("DB_GUARD_MISSING", Severity.UNKNOWN, (), ("transaction blocks not allowed",),
     "a pooler in statement mode refuses the read-only transaction every query of a runbook runs in; no query was "
     "run unguarded",
     ["Use the direct, session (5432) or transaction (6543) connection string: each lets a runbook open its "
      "read-only, time-bounded transaction."]),
    ("DB_POOLER_FULL", Severity.CRITICAL, (), ("no more connections allowed",),
     "the pooler in front of it accepts no more clients (its max_client_conn is reached)",
     ["The application's new connections are refused too: see which clients hold the pooler (SHOW CLIENTS on its "
      "admin console, or Supabase's pooler dashboard).", "Raise max_client_conn only after finding who holds them."]),
]


def unreachable(message: str, target: str = "", role: str = "", sqlstate: str | None = None) -> Finding:
    """DB_POOL_SATURATED when the server refused us for lack of slots (see refused_for_slots); a refusal that names
    its cause (a startup parameter, the login, the database, a full pooler: REFUSED_CONNECTIONS) as its own finding;
    else DB_UNREACHABLE, CRITICAL: the server could not be reached at all. `role` is the role the runbook connects
    as, `sqlstate` the server's error code when it answered."""
    if any(marker in message for marker in REFUSED_FOR_SLOTS):
        return refused_for_slots(message, target, role)
    for code, severity, states, markers, what, steps in REFUSED_CONNECTIONS:
        if sqlstate in states or any(marker in message for marker in markers):
            return Finding(code, severity, f"The database {target} answered and refused the connection: {what}."
                           .replace("  ", " "), {"error": message, "target": target, "role": role or None,
                                                 "sqlstate": sqlstate}, steps)
    return Finding("DB_UNREACHABLE", Severity.CRITICAL, f"The database {target} cannot be reached.".replace("  ", " "),
                   {"error": message, "target": target},
                   ["Check if Supabase is down (status page) and the project is not paused.",
                    "Check the connection string (host, port, pooler mode) and network access.",
                    "Notify the team: API requests that need the database are failing."])


def refused_for_slots(message: str, target: str, role: str) -> Finding:
    """DB_POOL_SATURATED (CRITICAL): the server refused this runbook's one connection for lack of slots, so it
    cannot name who holds them itself. The finding says which slots are left and the server version the
    refusal implies, and exactly what to run from a reserved slot (the query this runbook runs,
    sql/connections_by_state.sql); and, for PostgreSQL 16+, that granting pg_use_reserved_connections to `role`
    lets the runbook connect through a reserved slot and name them itself (pool_usage)."""
    from ..sources.database import load_sql  # the connection was tried: its libraries are loaded already
    left, version = next(((left, version) for words, left, version in REFUSALS if words in message),
                         (None, None))
    query = " ".join(load_sql("connections_by_state")[1].split("\n", 1)[1].split()) + ";"   # one line to paste
    grantee = role or "<the monitoring role>"
    return Finding("DB_POOL_SATURATED", Severity.CRITICAL,
                   f"The database refuses new connections: {_slots_taken(message, left)}.",
                   {"server_message": message, "target": target, "role": role or None,
                    "server_version": version or "unknown", "slots_left": left or "none",
                    "reserved_slot_query": query},
                   [_reserved_slot_step(message, left, query),
                    *([_grant_step(message, version, grantee)] if left or "too many clients" in message else []),
                    *REFUSED_STEPS],
                   # refused: every slot this role may use is taken (100 %); who holds how many is unknown from here
                   [Measure("usage", 100, "%", minimum=0, maximum=100), Measure("in_use", None)])


def _slots_taken(message: str, left: str | None) -> str:
    if left:
        return f"every connection slot is taken but {left}"
    if "too many clients" in message:
        return "every connection slot is taken, the reserved ones too"
    return "the connection limit of this role or database (CONNECTION LIMIT) is reached"


def _reserved_slot_step(message: str, left: str | None, query: str) -> str:
    """Exactly what to run, and as whom, to name who holds the slots."""
    if left and RESERVED_ROLE in left:
        who = (f"as a superuser or a role granted {RESERVED_ROLE} (the slots superuser_reserved_connections and "
               "reserved_connections keep)")
    elif left:
        who = "as a superuser (the slots superuser_reserved_connections keeps)"
    elif "too many clients" not in message:
        who = "as a superuser (a role's or database's CONNECTION LIMIT does not apply to superusers)"
    else:
        who = ("as a superuser (superuser_reserved_connections) or, on PostgreSQL 16 or later, a role granted "
               f"{RESERVED_ROLE} (reserved_connections), once one of those slots frees (they are all taken now: a "
               "superuser is refused too)")
    return (f"Name who holds the slots from a reserved slot (on Supabase, also Reports > Database): connect {who}, "
            f"and run: {query}")


def _grant_step(message: str, version: str | None, grantee: str) -> str:
    """How this runbook could name the holders itself next time: PostgreSQL 16's reserved_connections."""
    grant = f"GRANT {RESERVED_ROLE} TO {grantee}"
    if version == "16 or later" and f'"{RESERVED_ROLE}"' in message:
        return (f"This server is PostgreSQL 16 or later and keeps slots for {RESERVED_ROLE}: as a superuser, "
                f"{grant}; this runbook then connects through one of them and names the holders itself.")
    if version == "16 or later":
        return (f"This server is PostgreSQL 16 or later and no slot of reserved_connections is free (or it is 0): "
                f"set reserved_connections (e.g. 3; a restart) and, as a superuser, {grant}; this runbook then "
                "connects through a reserved slot and names the holders itself.")
    if version:
        return (f"This server is PostgreSQL {version} (it keeps slots for superusers only); from PostgreSQL 16, "
                f"reserved_connections with {grant} lets this runbook connect through a reserved slot and name "
                "the holders itself.")
    return (f"On PostgreSQL 16 or later, set reserved_connections (e.g. 3; a restart) and, as a superuser, {grant}; "
            "this runbook then connects through a reserved slot and names the holders itself.")


def pool_usage(limits: pd.DataFrame, by_state: pd.DataFrame, thresholds: dict[str, Any],
               leak_findings: list[Finding] | None = None) -> list[Finding]:
    """DB_POOL_SATURATED at 80 % (WARNING) and 95 % (CRITICAL) of the usable connection slots, naming the top
    holder (application, role, client address and state, with its count; the first holders in evidence).

    Other sessions only: this runbook's own connection is not counted (connection_limits excludes
    pg_backend_pid()), and usage is capped at 100 % (superusers' sessions in reserved slots are named apart).
    When every usable slot is taken and this runbook got in anyway because its role may use the slots
    PostgreSQL 16's reserved_connections keeps (server_version_num >= 160000 and pg_use_reserved_connections),
    the title says so: the case where a refused run could only say what to run (refused_for_slots).
    The next steps follow the leak check (`leak_findings`, from `leaks`): terminating sessions is suggested
    only when DB_CONNECTION_LEAK was found.
    """
    if limits.empty:
        return []
    row, rule = limits.iloc[0], thresholds["db_connections"]
    in_use, usable = int(row["in_use"]), int(row["usable"])
    usage = min(in_use / usable, 1.0) if usable else 1.0
    top = by_state.groupby("application")["connections"].sum().sort_values(ascending=False).head(3) \
        if not by_state.empty else pd.Series(dtype=int)
    holders = _holders(by_state)
    evidence = {"in_use": in_use, "usable": usable, "usage_pct": round(100 * usage, 1),
                "max_connections": int(row["max_connections"]), "top_applications": top.to_dict(),
                "holders": holders, "counted": "client sessions other than this runbook's own connection"}
    if in_use > usable:
        evidence["in_reserved_slots"] = in_use - usable
    measured = [Measure("usage", 100 * usage, "%", 100 * rule["warning_usage"], 100 * rule["critical_usage"], 0, 100),
                Measure("in_use", in_use, "", minimum=0, maximum=usable)]
    if usage >= rule["critical_usage"]:
        severity = Severity.CRITICAL
    elif usage >= rule["warning_usage"]:
        severity = Severity.WARNING
    else:
        return [Finding("DB_POOL_OK", Severity.OK, f"{usage:.0%} of usable connections in use.", evidence,
                        measures=measured)]
    reserved = f", {in_use - usable} more in reserved slots" if in_use > usable else ""
    named = f" Top holder: {_holder(holders[0])}." if holders else ""
    if in_use >= usable and _may_use_reserved_slots(row):
        evidence["connected_through"] = f"a slot reserved for {RESERVED_ROLE} (reserved_connections)"
        title = (f"Every usable connection slot is taken ({usable} of {usable}{reserved}; this runbook's own "
                 f"connection not counted): it got in through a slot reserved for {RESERVED_ROLE}.{named}")
    else:
        title = (f"{usage:.0%} of usable connections in use by other sessions ({min(in_use, usable)} of "
                 f"{usable}{reserved}; this runbook's own connection not counted).{named}")
    return [Finding("DB_POOL_SATURATED", severity, title, evidence, pool_steps(leak_findings), measured)]


def _may_use_reserved_slots(limits_row: Any) -> bool:
    """PostgreSQL 16+ and this role has the privileges of pg_use_reserved_connections (connection_limits)."""
    version = limits_row.get("server_version_num")
    return (version is not None and not pd.isna(version) and int(version) >= RESERVED_ROLE_SINCE
            and bool(limits_row.get("uses_reserved_slots")))


def _holders(by_state: pd.DataFrame, top: int = 5) -> list[dict[str, Any]]:
    """Who holds the connections: the largest groups of connections_by_state (application, role, client, state)."""
    if by_state.empty:
        return []
    columns = ["application", "role", "client", "state", "connections"]
    groups = by_state.reindex(columns=columns).sort_values("connections", ascending=False, kind="stable").head(top)
    return [{k: (int(v) if k == "connections" else v) for k, v in g.items()} for g in groups.to_dict("records")]


def _holder(holder: dict[str, Any]) -> str:
    return (f"{holder['application']} (user {holder['role']} from {holder['client']}, {holder['state']}) with "
            f"{holder['connections']} connection(s)")


def pool_steps(leak_findings: list[Finding] | None) -> list[str]:
    """POOL_STEPS with the leak step that matches what the leak check found (or that it did not run)."""
    codes = {f.code for f in leak_findings or []}
    step = (POOL_LEAK_STEP if "DB_CONNECTION_LEAK" in codes
            else POOL_NO_LEAK_STEP if "DB_NO_LEAKS" in codes else POOL_LEAK_UNKNOWN_STEP)
    return [POOL_STEPS[0], step, *POOL_STEPS[1:]]


def leaks(idle: pd.DataFrame, limits: pd.DataFrame, thresholds: dict[str, Any], min_idle_s: int) -> list[Finding]:
    """DB_CONNECTION_LEAK: sessions idle in transaction longer than min_idle_s; CRITICAL past a share of slots."""
    if idle.empty:
        return [] if idle.attrs.get("error") else [
            Finding("DB_NO_LEAKS", Severity.OK, f"No session idle in transaction for more than {min_idle_s} s.")]
    usable = int(limits.iloc[0]["usable"]) if not limits.empty else 0
    share = len(idle) / usable if usable else 0
    severity = Severity.CRITICAL if share >= thresholds["db_connections"]["leak_critical_share"] else Severity.WARNING
    apps = idle["application"].value_counts().to_dict()
    return [Finding("DB_CONNECTION_LEAK", severity,
                    f"{len(idle)} session(s) idle in transaction for more than {min_idle_s} s "
                    f"(oldest {idle['idle_s'].max():.0f} s).",
                    {"sessions": len(idle), "share_of_usable_pct": round(100 * share, 1), "applications": apps,
                     "pids": idle["pid"].head(10).tolist()}, LEAK_STEPS,
                    [Measure("leaked_share", 100 * share, "%", 0,
                             100 * thresholds["db_connections"]["leak_critical_share"], 0, 100),
                     Measure("leaked_sessions", len(idle), "", minimum=0)])]


def long_running(running: pd.DataFrame, min_seconds: int) -> list[Finding]:
    """DB_LONG_RUNNING_QUERY: active queries older than min_seconds (WARNING)."""
    if running.empty:
        return []
    longest = running.iloc[0]
    return [Finding("DB_LONG_RUNNING_QUERY", Severity.WARNING,
                    f"{len(running)} query(ies) running for more than {min_seconds} s "
                    f"(longest {longest['running_s']:.0f} s, {longest['waiting_on']}).",
                    {"queries": len(running), "longest_pid": int(longest["pid"]),
                     "longest_query": longest["query"], "application": longest["application"]},
                    ["If it waits on a lock, see the blocking chain below: the blocker is the cause.",
                     "If it is on CPU, EXPLAIN it; cancel with pg_cancel_backend(pid) if it hurts users."])]


IDLE_STATES = ("idle", "idle in transaction", "idle in transaction (aborted)")
CONTENTION = "normal row-lock contention"
BETWEEN_STATEMENTS = "between two statements"
RUNS_NOTHING = "runs nothing: waiting will not release its lock"


def blocking(chains: pd.DataFrame, thresholds: dict[str, Any], leak_min_idle_s: int | None = None) -> list[Finding]:
    """DB_BLOCKING_LOCKS, judged on each root blocker's state and the queue behind it, not only on the waits.

    A root blocker (blocks others, waits on nothing) that is idle, in a transaction or not (a session-level
    advisory lock), for idle_holder_grace_s or more runs nothing: waiting will not release its lock, and
    requests that give up on the lock and retry keep every single wait young. It is reported however young
    its queue: WARNING, CRITICAL once blocked_critical_waiters sessions queue behind it or it has run nothing
    for idle_holder_critical_s. Any other root is reported once a wait behind it passes blocked_warning_s:
    WARNING, CRITICAL past blocked_critical_s, with blocked_critical_waiters behind one root, or when DDL (an
    AccessExclusiveLock request) has been queued longer than blocked_warning_s (every later reader of that
    table queues behind it). Brief waits behind an active root with fewer than blocked_critical_waiters
    queued are normal row-lock contention (DB_LOCKS_OK), as are those behind a root idle for less than
    idle_holder_grace_s, which is between two statements. Each root reported is named with what frees its
    lock: cancel for an active one, the guarded terminate for an idle one (pg_cancel_backend does nothing to
    a session that runs no statement).
    """
    if chains.empty:
        return [] if chains.attrs.get("error") else [
            Finding("DB_LOCKS_OK", Severity.OK, "No session waits on a lock.",
                    measures=_lock_measures(0, 0.0, [], thresholds["db_connections"]))]
    rule = thresholds["db_connections"]
    warning_s = rule["blocked_warning_s"]
    waits = chains.groupby("blocked_pid")["waiting_s"].max().astype(float)
    longest = float(waits.max())
    roots = [_judge(r, rule) for r in _root_blockers(chains, waits)]
    blamed = [r for r in roots if r["judged"] == RUNS_NOTHING or r["longest_wait_s"] > warning_s]
    if not blamed and longest <= warning_s:
        return [_brief_waits(roots, len(waits), longest, rule)]
    # the queues that matter: a brief wait elsewhere (everyday row-lock contention) names no root, adds no waiter
    roots = sorted(blamed, key=lambda r: (r["judged"] != RUNS_NOTHING, -r["longest_wait_s"], r["pid"])) or roots
    reasons = _critical_because(chains, roots, longest, rule)
    root = roots[0] if roots else _describe(chains.iloc[0], [], waits)
    return [Finding("DB_BLOCKING_LOCKS", Severity.CRITICAL if reasons else Severity.WARNING,
                    _blocking_title(root, len(waits), longest),
                    {"blocked_sessions": len(waits), "longest_wait_s": longest,
                     "root_blockers": [r["pid"] for r in roots],
                     "root_blocker_query": root["query"], "roots": roots,
                     "critical_because": reasons,
                     "waits": sorted(set(chains["waiting_for"].dropna()))},
                    [_advice(r, leak_min_idle_s) for r in roots[:5]] + [
                        "If the root blocker is a migration (DDL), cancel it and re-run it off-peak with a short "
                        "lock_timeout."], _lock_measures(len(waits), longest, roots, rule))]


def _lock_measures(blocked: int, longest: float, roots: list[dict[str, Any]], rule: dict[str, Any]) -> list[Measure]:
    """The longest lock wait against blocked_warning_s / blocked_critical_s, the longest queue behind one root
    against blocked_critical_waiters, and how many sessions wait."""
    waiters = max((r["waiters"] for r in roots), default=0)
    return [Measure("longest_wait", longest, "s", rule["blocked_warning_s"], rule["blocked_critical_s"], 0),
            Measure("most_waiters", waiters, "", critical=rule["blocked_critical_waiters"], minimum=0),
            Measure("blocked_sessions", blocked, "", minimum=0)]


def _judge(root: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    """The root blocker with `judged`: it runs nothing (idle past the grace), is between two statements (idle
    under it), or runs a statement with a short queue (contention); None when it is none of those."""
    idle = root["state"] in IDLE_STATES and root["in_state_s"] is not None
    if idle and root["in_state_s"] >= rule["idle_holder_grace_s"]:
        judged = RUNS_NOTHING
    elif idle:
        judged = BETWEEN_STATEMENTS
    elif root["state"] == "active" and root["waiters"] < rule["blocked_critical_waiters"]:
        judged = CONTENTION
    else:
        judged = None
    return {**root, "judged": judged}


def _brief_waits(roots: list[dict[str, Any]], blocked: int, longest: float, rule: dict[str, Any]) -> Finding:
    """DB_LOCKS_OK for waits under blocked_warning_s whose roots all run statements or are between two: each
    root named with its state and how it is judged (only an active one with a short queue is contention)."""
    warning_s = rule["blocked_warning_s"]
    named = "; ".join(_brief_root(r, rule) for r in roots[:3]) + (
        f"; {len(roots) - 3} more root blocker(s)" if len(roots) > 3 else "")
    return Finding("DB_LOCKS_OK", Severity.OK,
                   f"{blocked} brief lock wait(s), longest {longest:.1f} s, under the {warning_s} s threshold: "
                   f"{named}.",
                   {"blocked_sessions": blocked, "longest_wait_s": longest,
                    "root_blockers": [r["pid"] for r in roots], "roots": roots, "threshold_s": warning_s,
                    "idle_holder_grace_s": rule["idle_holder_grace_s"]}, measures=_lock_measures(blocked, longest,
                                                                                                 roots, rule))


def _brief_root(root: dict[str, Any], rule: dict[str, Any]) -> str:
    who = f"pid {root['pid']} ({root['state']}, {root['application']}), {root['waiters']} waiting"
    if root["judged"] == CONTENTION:
        return f"{who}, runs a statement: {CONTENTION}"
    if root["judged"] == BETWEEN_STATEMENTS:
        return (f"{who}, idle {root['in_state_s']:.1f} s, under idle_holder_grace_s ({rule['idle_holder_grace_s']} "
                f"s): {BETWEEN_STATEMENTS}")
    return f"{who}: queued briefly"


def _critical_because(chains: pd.DataFrame, roots: list[dict[str, Any]], longest: float,
                      rule: dict[str, Any]) -> list[str]:
    """Why the blocking is CRITICAL (no reason: WARNING), one reason per rule that holds."""
    warning_s, critical_s = rule["blocked_warning_s"], rule["blocked_critical_s"]
    critical_waiters, idle_critical_s = rule["blocked_critical_waiters"], rule["idle_holder_critical_s"]
    reasons = []
    if longest >= critical_s:
        reasons.append(f"a session has waited {longest:.0f} s (critical at {critical_s} s)")
    most_waiters = max((r["waiters"] for r in roots), default=0)
    if most_waiters >= critical_waiters:
        reasons.append(f"{most_waiters} sessions wait behind one root blocker (critical at {critical_waiters})")
    idlest = max((r for r in roots if r["judged"] == RUNS_NOTHING), key=lambda r: r["in_state_s"], default=None)
    if idlest is not None and idlest["in_state_s"] >= idle_critical_s:
        reasons.append(f"root blocker pid {idlest['pid']} has run nothing ({idlest['state']}) for "
                       f"{idlest['in_state_s']:.0f} s while others queue behind it (critical at {idle_critical_s} s)")
    ddl = chains[chains["waiting_for"].fillna("").str.contains("AccessExclusiveLock")
                 & (chains["waiting_s"].astype(float) > warning_s)]
    if not ddl.empty:
        reasons.append(f"DDL has been queued for {float(ddl['waiting_s'].max()):.0f} s, and every later "
                       "query on that table queues behind it")
    return reasons


def _blocking_title(root: dict[str, Any], blocked: int, longest: float) -> str:
    """The root blocker to act on first: one that runs nothing is named in full (who, from where, since when,
    its queue); otherwise the longest wait and its root."""
    if root.get("judged") == RUNS_NOTHING:
        since = f"since {root['since'][11:19]} UTC " if root["since"] else ""
        return (f"Root blocker pid {root['pid']} ({root['state']}, {root['application']}), user {root['role']} "
                f"from {root['client']}, has run nothing {since}({root['in_state_s']:.0f} s) and "
                f"{root['waiters']} session(s) queue behind its lock, longest wait {root['longest_wait_s']:.1f} s: "
                f"waiting will not release it ({blocked} session(s) wait on locks in all).")
    return (f"{blocked} session(s) wait on locks, longest {longest:.0f} s; root blocker pid {root['pid']} "
            f"({root['state']}, {root['application']}).")


def _root_blockers(chains: pd.DataFrame, waits: pd.Series) -> list[dict[str, Any]]:
    """Sessions that block others and wait on nothing, with every session queued behind them (transitively),
    the longest-waiting queue first."""
    blocked_by: dict[int, set[int]] = {}
    for row in chains.itertuples(index=False):
        blocked_by.setdefault(int(row.blocking_pid), set()).add(int(row.blocked_pid))
    blocked = set(waits.index)
    roots = []
    for _, row in chains[~chains["blocking_pid"].isin(blocked)].drop_duplicates("blocking_pid").iterrows():
        behind, todo = set(), [int(row["blocking_pid"])]
        while todo:
            for pid in blocked_by.get(todo.pop(), ()):
                if pid not in behind:
                    behind.add(pid)
                    todo.append(pid)
        roots.append(_describe(row, sorted(behind), waits))
    return sorted(roots, key=lambda r: (-r["longest_wait_s"], r["pid"]))


def _describe(row: Any, behind: list[int], waits: pd.Series) -> dict[str, Any]:
    state = row["blocking_state"] if isinstance(row["blocking_state"], str) else "unknown"
    return {"pid": int(row["blocking_pid"]), "application": row["blocking_application"], "state": state,
            "role": row.get("blocking_role"), "client": row.get("blocking_client"),
            "since": _utc(row.get("blocking_state_change")),
            "in_state_s": _seconds(row.get("blocking_state_s")),
            "transaction_s": _seconds(row.get("blocking_transaction_s")),
            "holds_advisory_lock": bool(row.get("blocking_holds_advisory") or False),
            "waiters": len(behind), "longest_wait_s": float(max((waits[p] for p in behind), default=0.0)),
            "query": row["blocking_query"],
            "frees_lock": "terminate" if state in IDLE_STATES else "cancel"}


def _seconds(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _utc(value: Any) -> str | None:
    """A server timestamp as ISO 8601 in UTC (None when unknown)."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()


def _advice(root: dict[str, Any], leak_min_idle_s: int | None) -> str:
    """What frees this root blocker's lock, from its state: cancel an active one; the guarded terminate, on
    exactly this pid, for an idle one (its plan lists the idle root blockers this check reports)."""
    pid = root["pid"]
    if root["state"] == "active":
        return (f"Root blocker pid {pid} is running a statement: cancel it, SELECT pg_cancel_backend({pid}); "
                "its transaction rolls back and the lock is freed. Do not terminate it unless cancel fails.")
    if root["state"] not in IDLE_STATES:
        return (f"Root blocker pid {pid} is {root['state']}: try SELECT pg_cancel_backend({pid}); if the lock is "
                f"still held, SELECT pg_terminate_backend({pid}).")
    return (f"Terminate root blocker pid {pid} with this runbook's guarded action: run it with "
            f"terminate_root_blockers=true (the dry run lists pid {pid} as an idle root blocker), then apply=true, "
            f"operator=<you>; it ends pid {pid} only if it is still the same session, in the same transaction, has "
            f"run nothing since and still blocks. Or SELECT pg_terminate_backend({pid}). "
            f"{_why_idle(root, leak_min_idle_s)} pg_cancel_backend does nothing to a session that runs no "
            f"statement. Its last statement: {root['query']}")


def _why_idle(root: dict[str, Any], leak_min_idle_s: int | None) -> str:
    """What an idle root blocker holds, and what it is (a leaked transaction past leak_min_idle_s)."""
    idle = root["in_state_s"]
    if root["state"] == "idle":
        held = ("a session-level advisory lock (pg_advisory_lock), held until it calls pg_advisory_unlock or "
                "disconnects" if root["holds_advisory_lock"] else "a session-level lock")
        return f"It is idle, not in a transaction, and holds {held}: then fix the code path that does not release it."
    idle_text = f"{idle:.0f} s" if idle is not None else "an unknown time"
    if leak_min_idle_s is not None and idle is not None and idle > leak_min_idle_s:
        why = (f"its transaction has been idle for {idle_text}, longer than leak_min_idle_s ({leak_min_idle_s} s): "
               "a leaked transaction (see the leaks section)")
    else:
        why = f"its transaction has been idle for {idle_text}, holding its locks until it ends"
    return f"It is {root['state']}: {why}; ending it rolls the transaction back and frees the lock."


PLAN_STEPS = [
    "EXPLAIN (ANALYZE, BUFFERS) the statement: a Seq Scan on a large table means a missing index.",
    "Run `database-health` to see which tables are read by sequential scans.",
    "Add the index (CREATE INDEX CONCURRENTLY) through a migration.",
]
NO_WAIT_SAMPLES_STEP = ("Lock waits could not be sampled (pg_stat_activity.query_id needs PostgreSQL 14+ and "
                        "compute_query_id on or auto): check the blocking chain (section 4) before adding an index.")
LOCK_WAIT_STEPS = [
    "It waits on locks: see the blocking chain (section 4) — the session holding the rows is the cause, not "
    "this statement's plan; an index will not help.",
    "Shorten the transactions that hold those rows (commit sooner, no network calls inside a transaction), or "
    "run the competing updates in one order.",
]


def statement_causes(recent: Any, thresholds: dict[str, Any]) -> pd.DataFrame:
    """The window's statements with their lock-wait samples and a cause: 'lock waits' or 'plan / CPU / IO'.

    A statement is a lock victim when, of the times a session was seen running it during the window, at least
    lock_wait_share were waiting on a Lock (pg_stat_activity.query_id, PostgreSQL 14+).
    """
    found = recent.statements
    if found.empty:
        return found
    share = thresholds["db_statements"]["lock_wait_share"]
    table = found.merge(recent.waits, on="queryid", how="left")
    table[["lock_samples", "active_samples"]] = table[["lock_samples", "active_samples"]].fillna(0).astype(int)
    locked = (table["active_samples"] > 0) & (table["lock_samples"] >= share * table["active_samples"])
    table["cause"] = ["lock waits" if waits else "plan / CPU / IO" if recent.query_ids else "unknown (no query_id)"
                      for waits in locked]
    table.attrs.update(found.attrs)
    return table


def slow_queries(status: pd.DataFrame, recent: Any, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_SLOW_QUERY (plan) and DB_SLOW_QUERY_LOCK_WAIT (waits on locks): statements whose mean over the recent
    window (sources.statements.window) misses the 100 ms target. DB_SLOW_QUERY is CRITICAL past the 500 ms
    alert; a lock victim is graded as a lock wait is (blocked_warning_s / blocked_critical_s): brief waits are
    reported OK, with the advice to look at the blocking chain, never at an index.

    Only statements with at least db_statements.min_calls calls in the window are judged; lifetime figures
    (since pg_stat_statements was last reset) are context, never the verdict.
    """
    if status.empty:
        return []
    row = status.iloc[0]
    if not statements.available(status):
        return [Finding("DB_SLOW_QUERY_UNKNOWN", Severity.UNKNOWN,
                        "pg_stat_statements is not available, so slow queries cannot be listed.",
                        {"installed": bool(row["version"]), "preloaded": bool(row["preloaded"])},
                        ["Add pg_stat_statements to shared_preload_libraries (restart needed), then "
                         "CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions; "
                         "on Supabase it is enabled from Database > Extensions."])]
    if recent is None or recent.error:
        return []   # the failed query is already recorded (DB_QUERY_FAILED or DB_UNREACHABLE)
    rule, min_calls = thresholds["db_latency_ms"], thresholds["db_statements"]["min_calls"]
    lock_rule = thresholds["db_connections"]
    table = statement_causes(recent, thresholds)
    period = {"window": recent.period, "window_s": recent.seconds, "min_calls_in_window": min_calls,
              "lifetime_stats_since": recent.stats_since, "wait_samples": recent.samples}
    slow = table[table["mean_ms"].astype(float) > rule["warning_p95"]] if not table.empty else table
    if slow.empty:
        return [Finding("DB_QUERIES_OK", Severity.OK,
                        f"No statement with {min_calls}+ calls averaged more than {rule['warning_p95']} ms over "
                        f"{recent.period} (lifetime statistics since {recent.stats_since} are context only).",
                        period, measures=[Measure("worst_mean", _worst_mean(table), "ms", rule["warning_p95"],
                                                  rule["critical_p95"], 0)])]
    findings = []
    for code, rows, steps in [("DB_SLOW_QUERY", slow[slow["cause"] != "lock waits"], PLAN_STEPS),
                              ("DB_SLOW_QUERY_LOCK_WAIT", slow[slow["cause"] == "lock waits"], LOCK_WAIT_STEPS)]:
        if rows.empty:
            continue
        worst = rows.sort_values("mean_ms", ascending=False).iloc[0]
        mean = float(worst["mean_ms"])
        if code == "DB_SLOW_QUERY":
            severity = Severity.CRITICAL if mean > rule["critical_p95"] else Severity.WARNING
            what = "by their own work (plan, CPU or IO)"
            measured = Measure("worst_mean", mean, "ms", rule["warning_p95"], rule["critical_p95"], 0)
        else:   # a lock victim is judged as its wait is (the blocking check's rule): brief waits are contention
            warning_s, critical_s = lock_rule.get("blocked_warning_s", 5), lock_rule.get("blocked_critical_s", 60)
            severity = grade(mean, 1000 * warning_s, 1000 * critical_s)
            measured = Measure("worst_mean", mean, "ms", 1000 * warning_s, 1000 * critical_s, 0)
            what = ("waiting on locks" if severity is not Severity.OK else
                    f"waiting on locks, briefly (under the {warning_s} s lock-wait threshold: row-lock contention)")
        if code == "DB_SLOW_QUERY" and not recent.query_ids:
            steps = [NO_WAIT_SAMPLES_STEP, *PLAN_STEPS]
        findings.append(Finding(
            code, severity,
            f"{len(rows)} statement(s) averaged more than {rule['warning_p95']} ms over {recent.period}, "
            f"{what} (worst {mean:.0f} ms over {int(worst['calls'])} calls in the window; lifetime mean "
            f"{_ms(worst['lifetime_mean_ms'])} over {int(worst['lifetime_calls'])} calls since {recent.stats_since}).",
            {**period, "statements": len(rows), "worst_mean_ms": mean, "calls": int(worst["calls"]),
             "share_of_db_time_pct": float(worst["share_pct"] or 0), "cause": worst["cause"],
             "lock_wait_samples": int(worst["lock_samples"]), "active_samples": int(worst["active_samples"]),
             "lifetime_mean_ms": _float(worst["lifetime_mean_ms"]), "lifetime_calls": int(worst["lifetime_calls"]),
             "queryid": str(worst["queryid"]), "query": worst["query"]},
            steps, [measured, Measure("statements", len(rows), "", minimum=0)]))
    return findings


def _worst_mean(table: pd.DataFrame) -> float | None:
    """The highest mean (ms) of the judged statements in the window; None when none was judged."""
    return float(table["mean_ms"].astype(float).max()) if not table.empty else None


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _ms(value: Any) -> str:
    number = _float(value)
    return "unknown" if number is None else f"{number:.0f} ms"


def latency(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_LATENCY_P95_HIGH against the playbook's 100 ms target and 500 ms alert, and DB_PING_FAILED.

    A failed round trip is evidence, not noise: any is a WARNING, ping_failure_critical_share of them CRITICAL.
    When the connection was lost the probe stops (runbook.ping records DB_UNREACHABLE once); the pings it
    could not send are counted as not sent, not as failures.
    """
    return ping_failures(samples, thresholds) + p95(
        samples, thresholds, "db_latency_ms", "DB",
        ["Check the Supabase dashboard for CPU, memory and disk IO saturation.",
         "Look at slow queries and blocking chains above: they queue everything behind them."])


def ping_failures(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_PING_FAILED: how many of the sent pings failed, and the first error."""
    failed = samples[~samples["answered"]] if not samples.empty else samples
    if failed.empty:
        return []
    sent, planned = len(samples), int(samples.attrs.get("planned", len(samples)))
    share = len(failed) / sent
    critical = thresholds["db_latency_ms"]["ping_failure_critical_share"]
    severity = Severity.CRITICAL if share >= critical else Severity.WARNING
    first = failed.iloc[0]
    stopped = f"; the probe stopped there, {planned - sent} of {planned} not sent" if planned > sent else ""
    return [Finding("DB_PING_FAILED", severity,
                    f"{len(failed)} of {sent} database pings (SELECT 1) failed{stopped}; first error: "
                    f"{first['error']}",
                    {"failed": len(failed), "sent": sent, "planned": planned,
                     "failed_share_pct": round(100 * share, 1), "critical_share_pct": round(100 * critical, 1),
                     "first_failed_sample": int(first["sample"]), "first_error": first["error"],
                     "errors": failed["error"].value_counts().head(3).to_dict()},
                    ["A failing round trip means queries of the application fail too: see the errors above "
                     "(a lost connection is reported as DB_UNREACHABLE).",
                     "Check the Supabase dashboard and status page; check the network path (pooler, VPC) "
                     "between the application and the database."],
                    [Measure("failed_share", 100 * share, "%", 0, 100 * critical, 0, 100),
                     Measure("failed_pings", len(failed), "", minimum=0, maximum=sent)])]
