"""Check Database Health, where the space and the capacity go: table and index bloat (estimated, the method named),
unused indexes on large tables, role settings and connection limits, database and WAL size against a disk budget,
checkpoints. None of these stops the database today; each costs disk, memory or write speed until it does.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import pandas as pd

from ..findings import Finding, Measure, Severity

MB = 1024 * 1024
OFF = re.compile(r"0+\s*(us|ms|s|min|h|d)?")
QUERIES = ("table_bloat", "index_bloat", "unused_indexes", "role_settings", "role_connections", "disk_usage",
           "checkpoints")
GB = 1024 * MB
BLOAT_METHOD = ("ioguix's pgsql-bloat-estimation queries (as PgHero and pg-extras adapt them): the pages the live "
                "rows need, from reltuples and each column's width (pg_stats; the column's type when fixed-width), "
                "against the pages held")


class Queries(Protocol):
    """What `capacity` reads through: a Runbook (rb.query, rb.thresholds, and rb.env for the disk budget)."""

    thresholds: dict[str, Any]
    env: Any

    def query(self, name: str, **params: Any) -> pd.DataFrame: ...


def capacity(rb: Queries) -> tuple[dict[str, pd.DataFrame], list[Finding]]:
    """Every query of these checks through `rb` and every finding they make, for a caller that shows neither
    (triage): (frames by query name, findings). The notebook runs the same checks one section at a time."""
    frames = {name: rb.query(name) for name in QUERIES}
    return frames, [*bloat(frames["table_bloat"], frames["index_bloat"], rb.thresholds),
                    *unused_indexes(frames["unused_indexes"], rb.thresholds),
                    *roles(frames["role_settings"], frames["role_connections"], rb.thresholds),
                    *disk(frames["disk_usage"], getattr(rb.env, "disk_budget_gb", None), rb.thresholds),
                    *checkpoints(frames["checkpoints"], rb.thresholds)]


def _failed(*frames: pd.DataFrame) -> bool:
    """A query that could not be answered: Runbook.query recorded why (DB_QUERY_FAILED, DB_UNREACHABLE)."""
    return any(frame.attrs.get("error") for frame in frames)


def _mb(value: Any) -> float | None:
    return round(float(value) / MB, 1) if pd.notna(value) else None


# -- bloat ------------------------------------------------------------------------------------------------------


def bloat(tables: pd.DataFrame, indexes: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_TABLE_BLOAT / DB_INDEX_BLOAT when a table's (an index's) estimated wasted space reaches both
    db_capacity.bloat_warning_pct of it and db_capacity.table_bloat_min_mb (index_bloat_min_mb), so a small
    relation never fires; CRITICAL at bloat_critical_pct. DB_BLOAT_UNESTIMATED (UNKNOWN) for a relation that large
    whose width this role cannot know (pg_stats hidden). DB_BLOAT_OK otherwise."""
    if _failed(tables, indexes):
        return []
    rule = thresholds["db_capacity"]
    found = [f for f in (_bloated("table", tables, rule), _bloated("index", indexes, rule)) if f]
    hidden = _unestimated(tables, indexes, rule)
    if hidden:
        found.append(hidden)
    if any(f.code != "DB_BLOAT_UNESTIMATED" for f in found):
        return found
    worst = {kind: _worst(frame) for kind, frame in (("table", tables), ("index", indexes))}
    return [*found, Finding(
        "DB_BLOAT_OK", Severity.OK,
        f"No table or index wastes {rule['bloat_warning_pct']} % of its pages and {rule['table_bloat_min_mb']} MB "
        f"({rule['index_bloat_min_mb']} MB for an index), by the estimate of {BLOAT_METHOD}.",
        {"method": BLOAT_METHOD, "estimated": {"tables": int(tables["estimated"].astype(bool).sum()),
                                               "indexes": int(indexes["estimated"].astype(bool).sum())},
         "most_wasted": {k: v for k, v in worst.items() if v}},
        measures=[Measure(f"{kind}_bloat", (worst[kind] or {}).get("wasted_pct", 0.0), "%",
                          rule["bloat_warning_pct"], rule["bloat_critical_pct"], 0, 100)
                  for kind in ("table", "index")])]


def _worst(frame: pd.DataFrame) -> dict[str, Any]:
    """The estimated relation wasting most (the query orders by wasted bytes), or {}."""
    done = frame[frame["estimated"].astype(bool)]
    if done.empty:
        return {}
    top = done.iloc[0]
    return {"name": str(top.iloc[0]), "wasted_mb": _mb(top["wasted_bytes"]), "wasted_pct": float(top["wasted_pct"])}


def _bloated(kind: str, frame: pd.DataFrame, rule: dict[str, Any]) -> Finding | None:
    """The finding for the tables (indexes) of `frame` past both lines, the one wasting most named first."""
    name_col, size_col = f"{kind}_name", f"{kind}_bytes"
    done = frame[frame["estimated"].astype(bool)]
    line_mb = rule[f"{kind}_bloat_min_mb"]
    over = done[(done["wasted_pct"].astype(float) >= rule["bloat_warning_pct"])
                & (done["wasted_bytes"].astype(float) >= line_mb * MB)]
    if over.empty:
        return None
    top = over.iloc[0]
    name, share, wasted = str(top[name_col]), float(top["wasted_pct"]), _mb(top["wasted_bytes"])
    severity = Severity.CRITICAL if share >= rule["bloat_critical_pct"] else Severity.WARNING
    where = f" on {top['table_name']}" if kind == "index" else ""
    title = (f"{kind.capitalize()} {name}{where} wastes an estimated {wasted:,.1f} MB, {share:.0f} % of its "
             f"{_mb(top[size_col]):,.1f} MB (its live {'entries' if kind == 'index' else 'rows'} need "
             f"{_mb(top['expected_bytes']):,.1f} MB)")
    if len(over) > 1:
        title += f", and {len(over) - 1} more {kind}{'es' if kind == 'index' else 's'}"
    evidence = {"culprit": name, "method": BLOAT_METHOD,
                f"{kind}s" if kind == "table" else "indexes": {
                    str(r[name_col]): {"size_mb": _mb(r[size_col]), "wasted_mb": _mb(r["wasted_bytes"]),
                                       "wasted_pct": float(r["wasted_pct"]), "needed_mb": _mb(r["expected_bytes"]),
                                       **({"table": str(r["table_name"])} if kind == "index" else
                                          {"widths_from": str(r["widths_from"])})}
                    for _, r in over.iterrows()}}
    if kind == "table":
        steps = [f"Check {t} for dead rows first (section 4, Dead tuples and vacuum): VACUUM {t} makes their space "
                 "reusable, without giving it back to the disk." for t in over["table_name"].astype(str)]
        steps.append("To give the space back: pg_repack (online, Supabase ships it) or VACUUM FULL in a "
                     "maintenance window (it locks the table exclusively and needs room for a full copy).")
    else:
        steps = [f"REINDEX INDEX CONCURRENTLY {i}; (online; it needs room for a second copy while it builds)."
                 for i in over["index_name"].astype(str)]
    code = "DB_TABLE_BLOAT" if kind == "table" else "DB_INDEX_BLOAT"
    return Finding(code, severity, title + ".", evidence, steps,
                   [Measure(f"{kind}_bloat", share, "%", rule["bloat_warning_pct"], rule["bloat_critical_pct"], 0,
                            100),
                    Measure(f"{kind}_wasted", wasted, "MB", line_mb, None, 0)])


def _unestimated(tables: pd.DataFrame, indexes: pd.DataFrame, rule: dict[str, Any]) -> Finding | None:
    """DB_BLOAT_UNESTIMATED (UNKNOWN): tables and indexes large enough to pass the wasted-MB line whose rows' width
    this role cannot know, with why and what would let it (or who can run the estimate instead)."""
    blind = {}
    for kind, frame in (("table", tables), ("index", indexes)):
        big = frame[~frame["estimated"].astype(bool)
                    & (frame[f"{kind}_bytes"].astype(float) >= rule[f"{kind}_bloat_min_mb"] * MB)]
        blind |= {str(r[f"{kind}_name"]): {"kind": kind, "size_mb": _mb(r[f"{kind}_bytes"]), "why": str(r["why_not"])}
                  for _, r in big.iterrows()}
    if not blind:
        return None
    steps = []
    if any("row level security" in b["why"] for b in blind.values()):
        steps.append("Row level security hides a table's statistics from every role but its owner and BYPASSRLS, "
                     "and no grant the monitoring role may hold changes that: run the estimate as the tables' owner "
                     "(`supabase inspect db bloat`, or this runbook's table_bloat query as postgres).")
    if any("may not SELECT" in b["why"] for b in blind.values()):
        steps.append("GRANT SELECT ON the tables named TO the monitoring role, if reading their rows is acceptable: "
                     "pg_stats shows the statistics of columns it may select.")
    if any("analyzed" in b["why"] for b in blind.values()):
        steps.append("ANALYZE the tables named (autovacuum analyzes them after enough changes).")
    first = next(iter(blind))
    return Finding("DB_BLOAT_UNESTIMATED", Severity.UNKNOWN,
                   f"Bloat of {len(blind)} large table(s) or index(es) cannot be estimated by this role: {first} "
                   f"({blind[first]['size_mb']} MB): {blind[first]['why']}.",
                   {"relations": blind, "method": BLOAT_METHOD}, steps)


# -- unused indexes ---------------------------------------------------------------------------------------------


def unused_indexes(unused: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_INDEX_UNUSED (WARNING): indexes no scan used since the statistics began (not unique, not a constraint's)
    on tables of db_capacity.unused_index_table_min_mb or more, once the statistics are
    db_capacity.unused_index_min_days old; younger statistics (a reset, a new server) make every index look unused,
    so then they are context in DB_INDEX_USAGE_OK, which states their age either way."""
    if _failed(unused) or unused.empty:
        return []
    rule = thresholds["db_capacity"]
    first = unused.iloc[0]
    age, since = float(first["stats_age_days"]), str(first["stats_since"])
    basis = ("the server's start (the statistics were never reset)" if bool(first["since_start"])
             else "the statistics reset")
    rows = unused[unused["index_name"].notna()]
    large = rows[rows["table_bytes"].astype(float) >= rule["unused_index_table_min_mb"] * MB]
    listed = {str(r.index_name): {"table": str(r.table_name), "index_mb": _mb(r.index_bytes),
                                  "table_mb": _mb(r.table_bytes), "writes_since": int(r.writes_since),
                                  "definition": str(r.definition)} for r in large.itertuples()}
    evidence = {"stats_since": since, "stats_age_days": age, "counted_from": basis,
                "min_days": rule["unused_index_min_days"]}
    measure = Measure("stats_age", age, "days", minimum=0)
    if large.empty or age < rule["unused_index_min_days"]:
        title = (f"No index on a table of {rule['unused_index_table_min_mb']} MB or more is unused"
                 if large.empty else
                 f"{len(large)} index(es) on large tables show no scan, but the statistics count only from {since} "
                 f"({age:.1f} days, under {rule['unused_index_min_days']}): too young to call them unused")
        return [Finding("DB_INDEX_USAGE_OK", Severity.OK, f"{title} (statistics since {basis}).",
                        evidence | ({"not_yet_judged": listed} if listed else {}), measures=[measure])]
    top = large.iloc[0]
    name = str(top["index_name"])
    title = (f"Index {name} on {top['table_name']} ({_mb(top['table_bytes']):,.1f} MB) has not been used by any "
             f"scan in {age:.0f} days (since {basis}), yet every write maintains it ({_mb(top['index_bytes']):,.1f} "
             "MB)")
    if len(large) > 1:
        title += f"; {len(large) - 1} more unused on large tables"
    steps = [f"Check that no rare job (a monthly report, a replica's queries: statistics are per server) needs {i}, "
             f"then DROP INDEX CONCURRENTLY {i}; through a migration (keep its definition to rebuild it)."
             for i in large["index_name"].astype(str)]
    return [Finding("DB_INDEX_UNUSED", Severity.WARNING, title + ".",
                    evidence | {"culprit": name, "indexes": listed}, steps,
                    [measure, Measure("unused_indexes", len(large), "", minimum=0)])]


# -- roles: settings and connections ----------------------------------------------------------------------------


def _off(value: Any) -> bool:
    """A timeout setting's value that means 'no timeout': 0, in any unit ('0', '0s', '0ms', "'0'")."""
    return bool(OFF.fullmatch(str(value).strip().strip("'\"")))


def roles(settings: pd.DataFrame, connections: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_ROLE_CONNECTIONS_HIGH when a login role holds db_capacity.role_connections_warning_pct of its limit (its
    own rolconnlimit, else the server's max_connections less the superusers' reserve), CRITICAL at
    role_connections_critical_pct; DB_ROLE_STATEMENT_TIMEOUT_OFF (WARNING) when an API role (db_capacity.api_roles:
    Supabase's anon and authenticated, which it gives 3 s and 8 s) has a role-level statement_timeout of 0, so a
    runaway query through the API runs for ever. DB_ROLES_OK otherwise, with the settings and connections shown."""
    if _failed(settings, connections):
        return []
    rule = thresholds["db_capacity"]
    shown: dict[str, dict[str, str]] = {}
    for r in settings.itertuples():   # a setting for one database only is shown with it
        key = str(r.role_name) if r.database == "(every database)" else f"{r.role_name} ({r.database})"
        shown.setdefault(key, {})[str(r.setting)] = str(r.value)
    conns = connections.assign(limit=connections["role_limit"].where(connections["role_limit"] >= 0,
                                                                     connections["server_limit"]))
    conns = conns.assign(used_pct=(100.0 * conns["connections"] / conns["limit"].where(conns["limit"] > 0)).round(1))
    evidence = {"role_settings": shown,
                "connections": {str(r.role_name): {"connections": int(r.connections), "limit": int(r.limit),
                                                   "own_limit": int(r.role_limit) >= 0, "used_pct": r.used_pct,
                                                   "applications": dict(r.applications or {})}
                                for r in conns.itertuples() if r.connections}}
    most = float(conns["used_pct"].max()) if len(conns) and conns["used_pct"].notna().any() else 0.0
    measure = Measure("role_connections", most, "%", rule["role_connections_warning_pct"],
                      rule["role_connections_critical_pct"], 0, 100)
    found = []
    high = conns[conns["used_pct"].fillna(0) >= rule["role_connections_warning_pct"]]
    if not high.empty:
        found.append(_connections_high(high, rule, measure, evidence))
    off = settings[settings["role_name"].isin(rule["api_roles"]) & (settings["setting"] == "statement_timeout")
                   & settings["value"].map(_off)]
    if not off.empty:
        names = sorted(set(off["role_name"].astype(str)))
        found.append(Finding(
            "DB_ROLE_STATEMENT_TIMEOUT_OFF", Severity.WARNING,
            f"API role {names[0]} has statement_timeout 0 set on the role: a query through the API is never "
            "cancelled, however long it runs" + (f" ({len(names) - 1} more role(s))" if len(names) > 1 else "") + ".",
            evidence | {"culprit": names[0], "roles": names},
            [f"ALTER ROLE {n} SET statement_timeout = '{'3s' if n == 'anon' else '8s'}'; (Supabase's default; "
             "new sessions take it) and find who removed it." for n in names]))
    if found:
        return found
    return [Finding("DB_ROLES_OK", Severity.OK,
                    f"No role is at {rule['role_connections_warning_pct']} % of its connection limit (most: "
                    f"{most:.0f} %) and no API role runs without a statement_timeout.", evidence, measures=[measure])]


def _connections_high(high: pd.DataFrame, rule: dict[str, Any], measure: Measure, evidence: dict[str, Any]) -> Finding:
    top = high.sort_values("used_pct", ascending=False).iloc[0]
    name, used = str(top["role_name"]), float(top["used_pct"])
    severity = Severity.CRITICAL if used >= rule["role_connections_critical_pct"] else Severity.WARNING
    apps = dict(top["applications"] or {})
    busiest = max(apps, key=apps.get) if apps else None
    own = int(top["role_limit"]) >= 0
    title = (f"Role {name} holds {int(top['connections'])} of its {int(top['limit'])} connections ({used:.0f} %, "
             f"{'its own CONNECTION LIMIT' if own else 'the server max_connections less the superusers reserve'})")
    if busiest:
        title += f", most from application {busiest} ({apps[busiest]})"
    steps = [f"Find why {busiest or name} holds so many sessions: `database-connection-errors` names leaked and idle "
             "ones and can end them under guard.",
             "Route the application through the pooler (Supavisor) instead of direct connections"
             + (f", or raise the role's limit: ALTER ROLE {name} CONNECTION LIMIT n." if own else ".")]
    return Finding("DB_ROLE_CONNECTIONS_HIGH", severity, title + ".",
                   evidence | {"culprit": name, "application": busiest}, steps, [measure])


# -- disk and checkpoints ---------------------------------------------------------------------------------------


def disk(usage: pd.DataFrame, budget_gb: float | None, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_DISK_BUDGET_HIGH when the databases' sizes plus the WAL's normal ceiling (max_wal_size) reach
    db_capacity.disk_warning_pct of the profile's disk_budget_gb (CRITICAL at disk_critical_pct), naming the largest
    database; DB_DISK_OK otherwise, and with no budget set the sizes are shown, not judged. The WAL directory's
    actual size needs pg_monitor (pg_ls_waldir): counted at max_wal_size here, with the grant named."""
    if _failed(usage) or usage.empty:
        return []
    rule = thresholds["db_capacity"]
    databases = {str(r.database): _mb(r.database_bytes) for r in usage.itertuples()}
    wal = int(usage["max_wal_bytes"].iloc[0])
    used = float(usage["database_bytes"].sum()) + wal
    evidence: dict[str, Any] = {
        "databases_mb": databases, "wal_counted_mb": _mb(wal), "total_mb": _mb(used),
        "wal_counted_as": "max_wal_size, the WAL's ceiling between checkpoints (slots may retain more: section 6)",
        "budget_gb": budget_gb}
    if not bool(usage["wal_readable"].iloc[0]):
        evidence["wal_actual_size"] = f"GRANT pg_monitor TO {usage['reader'].iloc[0]}; lets it read pg_ls_waldir"
    size = Measure("disk_used", round(used / GB, 2), "GB", minimum=0)
    share = None if budget_gb is None else round(100.0 * used / (budget_gb * GB), 1)
    measure = Measure("disk_budget_used", share, "%", rule["disk_warning_pct"], rule["disk_critical_pct"], 0)
    if share is None:
        return [Finding("DB_DISK_OK", Severity.OK,
                        f"Databases take {float(usage['database_bytes'].sum()) / GB:,.2f} GB, and WAL up to "
                        f"{wal / GB:,.2f} GB (max_wal_size); no disk_budget_gb in the profile, so not judged.",
                        evidence, measures=[measure, size])]
    if share < rule["disk_warning_pct"]:
        return [Finding("DB_DISK_OK", Severity.OK,
                        f"Databases and WAL take {used / GB:,.2f} GB, {share:.0f} % of the {budget_gb:g} GB disk "
                        "budget.", evidence, measures=[measure, size])]
    top = usage.iloc[0]
    severity = Severity.CRITICAL if share >= rule["disk_critical_pct"] else Severity.WARNING
    title = (f"Databases and WAL take {used / GB:,.2f} GB, {share:.0f} % of the {budget_gb:g} GB disk budget; "
             f"database {top['database']} holds {float(top['database_bytes']) / GB:,.2f} GB of it")
    steps = ["See where the space goes: section 3 (table sizes) and section 9 (bloat); a log or event table without "
             "retention is the usual cause.",
             "Check no replication slot retains WAL (section 6).",
             "Grow the disk before it fills (Supabase: compute and disk settings); at 95 % Supabase makes the database "
             "read-only."]
    return [Finding("DB_DISK_BUDGET_HIGH", severity, title + ".", evidence | {"culprit": str(top["database"])},
                    steps, [measure])]


def checkpoints(points: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_CHECKPOINTS_REQUESTED (WARNING) when db_capacity.checkpoint_requested_warning_pct of the checkpoints since
    the background writer's statistics reset were requested (WAL reached max_wal_size, or a CHECKPOINT command)
    rather than timed, out of at least checkpoint_min_count: max_wal_size is too small for the write load.
    DB_CHECKPOINTS_OK otherwise; nothing when the server does not report them here (PostgreSQL 17+)."""
    if _failed(points) or points.empty or points["timed"].isna().iloc[0]:
        return []
    rule = thresholds["db_capacity"]
    row = points.iloc[0]
    timed, requested = int(row["timed"]), int(row["requested"])
    total = timed + requested
    share = round(100.0 * requested / total, 1) if total else 0.0
    evidence = {"timed": timed, "requested": requested, "stats_since": str(row["stats_since"]),
                "stats_age_hours": float(row["stats_age_hours"]), "max_wal_size": str(row["max_wal_size"]),
                "checkpoint_timeout": str(row["checkpoint_timeout"])}
    measure = Measure("checkpoints_requested", share, "%", rule["checkpoint_requested_warning_pct"], None, 0, 100)
    if total < rule["checkpoint_min_count"] or share < rule["checkpoint_requested_warning_pct"]:
        reason = (f"too few to judge ({total}, under {rule['checkpoint_min_count']})"
                  if total < rule["checkpoint_min_count"] else f"{share:.0f} % requested")
        return [Finding("DB_CHECKPOINTS_OK", Severity.OK,
                        f"Checkpoints since {row['stats_since']}: {timed} timed, {requested} requested: {reason}.",
                        evidence, measures=[measure])]
    return [Finding("DB_CHECKPOINTS_REQUESTED", Severity.WARNING,
                    f"{requested} of {total} checkpoints ({share:.0f} %) since {row['stats_since']} were requested, "
                    f"not timed: WAL reaches max_wal_size ({row['max_wal_size']}) before checkpoint_timeout "
                    f"({row['checkpoint_timeout']}).",
                    evidence,
                    ["Raise max_wal_size (Supabase: a larger compute size, or the config in the dashboard) so "
                     "checkpoints come from checkpoint_timeout: fewer full-page writes and a steadier write load.",
                     "If a bulk load or a CHECKPOINT command explains them, wait for the statistics to cover normal "
                     "traffic (pg_stat_reset_shared('bgwriter') restarts the count)."],
                    [measure])]
