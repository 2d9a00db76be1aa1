"""Database Connection Errors: reachability, pool usage, leaks, long-running queries, blocking, slow queries."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Severity
from .latency import p95

REFUSED_FOR_SLOTS = ("too many clients", "remaining connection slots are reserved", "too many connections")
POOL_STEPS = [
    "See which application holds the connections (table above) and whether they are idle or idle in transaction.",
    "Terminate leaked sessions with this runbook's guarded action (apply=true, operator=<you>).",
    "Use the Supabase pooler (transaction mode) for serverless functions; increase the pool size only after.",
    "Check if Supabase is down (status page) before changing anything.",
]
REFUSED_STEPS = [
    "The server refused even this one diagnostic connection: see who holds the slots in the Supabase dashboard "
    "(Reports > Database), or from a superuser session using a reserved slot.",
    "Restart or scale down what holds them (usually the API's connection pool); ending sessions needs a slot too.",
    "Use the Supabase pooler (transaction mode) for serverless functions; increase the pool size only after.",
    "Check if Supabase is down (status page).",
]
LEAK_STEPS = [
    "Find the code path that opens a transaction and does not commit or roll back (the last_query shows where).",
    "Terminate the leaked sessions with this runbook's guarded action (dry run first; apply=true, operator=<you>).",
    "Set idle_in_transaction_session_timeout for the application role so the server ends such leaks itself.",
]


def unreachable(message: str, target: str = "") -> Finding:
    """DB_POOL_SATURATED when the server refused us for lack of slots, else DB_UNREACHABLE; both CRITICAL."""
    if any(marker in message for marker in REFUSED_FOR_SLOTS):
        return Finding("DB_POOL_SATURATED", Severity.CRITICAL,
                       "The database refuses new connections: every connection slot is taken.",
                       {"server_message": message, "target": target}, REFUSED_STEPS)
    return Finding("DB_UNREACHABLE", Severity.CRITICAL, f"The database {target} cannot be reached.".replace("  ", " "),
                   {"error": message, "target": target},
                   ["Check if Supabase is down (status page) and the project is not paused.",
                    "Check the connection string (host, port, pooler mode) and network access.",
                    "Notify the team: API requests that need the database are failing."])


def pool_usage(limits: pd.DataFrame, by_state: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_POOL_SATURATED at 80 % (WARNING) and 95 % (CRITICAL) of the usable connection slots."""
    if limits.empty:
        return []
    row, rule = limits.iloc[0], thresholds["db_connections"]
    usage = row["in_use"] / row["usable"]
    top = by_state.groupby("application")["connections"].sum().sort_values(ascending=False).head(3)
    evidence = {"in_use": int(row["in_use"]), "usable": int(row["usable"]), "usage_pct": round(100 * usage, 1),
                "max_connections": int(row["max_connections"]), "top_applications": top.to_dict()}
    if usage >= rule["critical_usage"]:
        severity = Severity.CRITICAL
    elif usage >= rule["warning_usage"]:
        severity = Severity.WARNING
    else:
        return [Finding("DB_POOL_OK", Severity.OK, f"{usage:.0%} of usable connections in use.", evidence)]
    return [Finding("DB_POOL_SATURATED", severity,
                    f"{usage:.0%} of usable connections in use ({row['in_use']} of {row['usable']}).",
                    evidence, POOL_STEPS)]


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
                     "pids": idle["pid"].head(10).tolist()}, LEAK_STEPS)]


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


def blocking(chains: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_BLOCKING_LOCKS: sessions waiting on locks held by others; root blockers named."""
    if chains.empty:
        return []
    blocked = set(chains["blocked_pid"])
    roots = chains[~chains["blocking_pid"].isin(blocked)].drop_duplicates("blocking_pid")
    longest = float(chains["waiting_s"].max())
    severity = (Severity.CRITICAL if longest >= thresholds["db_connections"]["blocked_critical_s"]
                or len(blocked) >= 3 else Severity.WARNING)
    root = roots.iloc[0] if len(roots) else chains.iloc[0]
    return [Finding("DB_BLOCKING_LOCKS", severity,
                    f"{len(blocked)} session(s) wait on locks; root blocker pid {root['blocking_pid']} "
                    f"({root['blocking_state']}, {root['blocking_application']}).",
                    {"blocked_sessions": len(blocked), "longest_wait_s": longest,
                     "root_blockers": roots["blocking_pid"].astype(int).tolist(),
                     "root_blocker_query": root["blocking_query"],
                     "waits": sorted(set(chains["waiting_for"].dropna()))},
                    ["If the root blocker is idle in transaction it is a leak: terminate it (guarded action).",
                     "If it is a migration (DDL), cancel it and re-run it off-peak with a short lock_timeout.",
                     "Otherwise cancel the blocker: SELECT pg_cancel_backend(<root pid>)."])]


def statements_available(status: pd.DataFrame) -> bool:
    """pg_stat_statements is installed and preloaded, so the slow_queries query can run."""
    return not status.empty and bool(status.iloc[0]["version"]) and bool(status.iloc[0]["preloaded"])


def slow_queries(status: pd.DataFrame, statements: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_SLOW_QUERY: statements whose mean time misses the 100 ms target (CRITICAL past the 500 ms alert)."""
    if status.empty:
        return []
    row = status.iloc[0]
    if not statements_available(status):
        return [Finding("DB_SLOW_QUERY_UNKNOWN", Severity.UNKNOWN,
                        "pg_stat_statements is not available, so slow queries cannot be listed.",
                        {"installed": bool(row["version"]), "preloaded": bool(row["preloaded"])},
                        ["Add pg_stat_statements to shared_preload_libraries (restart needed), then "
                         "CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions; "
                         "on Supabase it is enabled from Database > Extensions."])]
    rule = thresholds["db_latency_ms"]
    slow = statements[statements["mean_ms"] > rule["warning_p95"]] if not statements.empty else statements
    if slow.empty:
        return [Finding("DB_QUERIES_OK", Severity.OK,
                        f"No statement averages more than {rule['warning_p95']} ms.")]
    worst = slow.sort_values("mean_ms", ascending=False).iloc[0]
    severity = Severity.CRITICAL if worst["mean_ms"] > rule["critical_p95"] else Severity.WARNING
    return [Finding("DB_SLOW_QUERY", severity,
                    f"{len(slow)} statement(s) average more than {rule['warning_p95']} ms "
                    f"(worst {worst['mean_ms']:.0f} ms over {worst['calls']} calls).",
                    {"statements": len(slow), "worst_mean_ms": float(worst["mean_ms"]), "calls": int(worst["calls"]),
                     "share_of_db_time_pct": float(worst["share_pct"] or 0), "query": worst["query"]},
                    ["EXPLAIN (ANALYZE, BUFFERS) the statement: a Seq Scan on a large table means a missing index.",
                     "Run `database-health` to see which tables are read by sequential scans.",
                     "Add the index (CREATE INDEX CONCURRENTLY) through a migration."])]


def latency(samples: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_LATENCY_P95_HIGH against the playbook's 100 ms target and 500 ms alert."""
    return p95(samples, thresholds, "db_latency_ms", "DB",
               ["Check the Supabase dashboard for CPU, memory and disk IO saturation.",
                "Look at slow queries and blocking chains above: they queue everything behind them."])
