"""Check Database Health: cache hit ratio, tables read by sequential scans, vacuum lag, row level security."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import Finding, Measure, Severity
from ..sources import cache

PLURAL = {"table": "tables", "index": "indexes"}   # evidence keys: tables_read_from_disk, indexes_...


def cache_hit(recent: Any, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_CACHE_HIT_LOW when table or index reads miss the 99 % buffer cache target, judged on a recent window.

    `recent` is a sources.cache.CacheWindow: two snapshots of the per-relation statio counters taken within the run.
    The window is judged when it saw db_health.cache_min_blocks block accesses; when it saw fewer (a quiet
    platform), the cumulative figures since the statistics reset are shown with their age and culprit, and not
    judged (OK): a bulk load, a restore or an evicting job since the reset weighs on them long after it ended.
    The relations named are those holding the misses of the kind
    that is low (a table's heap or an index), most blocks read from disk first, with their share of the misses.
    """
    if recent is None or recent.error or recent.after.empty:
        return []   # the failed query is already recorded (DB_QUERY_FAILED or DB_UNREACHABLE)
    rule = thresholds["db_health"]
    rows, on_window, in_window = _cache_basis(recent, rule["cache_min_blocks"])
    totals = _cache_totals(rows)
    age = cache.age_text(recent.stats_age_s)
    where = (f"over {recent.period}" if on_window else
             f"since the statistics reset ({recent.stats_since}, {age} ago; the {recent.period} window saw "
             f"{in_window:,} block accesses, too few to judge)")
    evidence: dict[str, Any] = {
        "judged_on": "window" if on_window else "since the statistics reset", "window": recent.period,
        "window_s": recent.seconds, "block_accesses_in_window": in_window,
        "stats_since": recent.stats_since, "stats_age": age}
    evidence |= {f"{r.kind}_hit_pct": r.hit_pct for r in totals.itertuples()}
    blocks = int((totals["hits"] + totals["reads"]).sum())
    evidence["block_accesses_judged"] = blocks
    measured = [Measure(f"{r.kind}_hit", r.hit_pct, "%", rule["cache_hit_pct"], None, 0, 100, low_is_bad=True)
                for r in totals.itertuples()]
    if blocks < rule["cache_min_blocks"]:
        return [Finding("DB_CACHE_HIT_OK", Severity.OK,
                        f"Too little traffic {where} to judge the cache ({blocks:,} block accesses).",
                        evidence, measures=measured)]
    accesses = totals["hits"] + totals["reads"]     # each kind judged on its own accesses
    low = totals[(totals["hit_pct"].fillna(100) < rule["cache_hit_pct"]) & (accesses >= rule["cache_min_blocks"])]
    if low.empty:
        return [Finding("DB_CACHE_HIT_OK", Severity.OK,
                        f"Cache hit ratio is at or above {rule['cache_hit_pct']} % {where}.", evidence,
                        measures=measured)]
    misses = rows[rows["kind"].isin(low["kind"]) & (rows["reads"] > 0)]
    misses = misses.sort_values(["reads", "relation"], ascending=[False, True])
    total_reads = int(low["reads"].sum())
    for kind in low["kind"]:
        top = misses[misses["kind"] == kind].head(rule["cache_top_tables"])
        # most blocks read from disk first: the order is the ranking
        evidence[PLURAL[kind] + "_read_from_disk"] = {
            str(r.relation): {"table": str(r.table_name), "blocks_read": int(r.reads), "blocks_hit": int(r.hits),
                              "hit_pct": _pct(r.hits, r.reads),
                              "share_of_misses_pct": round(100 * int(r.reads) / max(total_reads, 1), 1)}
            for r in top.itertuples()}
    title = f"{', '.join(low['kind'])} cache hit ratio below {rule['cache_hit_pct']} % {where}: reads go to disk"
    steps = ["If the working set simply outgrew memory, move to a larger Supabase compute size."]
    if not misses.empty:
        culprit = misses.iloc[0]
        evidence["culprit"] = {"relation": str(culprit["relation"]), "kind": str(culprit["kind"]),
                               "table": str(culprit["table_name"]), "blocks_read": int(culprit["reads"])}
        share = 100 * int(culprit["reads"]) / max(total_reads, 1)
        title += (f", most from {culprit['kind']} {culprit['relation']} ({int(culprit['reads']):,} blocks, "
                  f"{share:.0f} % of the misses)")
        names = misses["table_name"].astype(str).drop_duplicates().tolist()
        steps.insert(0, f"Find what reads {', '.join(names[:3])} from disk (sequential scans, next section; slow "
                        "queries in `database-connection-errors`): an index or a narrower query keeps them out of "
                        "the cache.")
    if not on_window:
        # A quiet window cannot be judged, and the figures since the reset carry whatever ran since (a bulk load, a
        # restore, a scenario that evicted the cache): they are shown, with their culprit, and not judged.
        return [Finding("DB_CACHE_HIT_OK", Severity.OK, f"Not judged: {title}. Run again under everyday traffic "
                        "(or with a longer cache_window_s) to judge the cache on a recent window.", evidence,
                        measures=measured)]
    return [Finding("DB_CACHE_HIT_LOW", Severity.WARNING, title + ".", evidence, steps, measured)]


def _cache_totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Block hits, reads and hit ratio (%, None without accesses) per kind, table then index, from per-relation
    rows."""
    frame = pd.DataFrame({"kind": ["table", "index"]})
    sums = rows.groupby("kind")[["hits", "reads"]].sum() if not rows.empty else pd.DataFrame(columns=["hits", "reads"])
    frame["hits"] = [int(sums["hits"].get(k, 0)) for k in frame["kind"]]
    frame["reads"] = [int(sums["reads"].get(k, 0)) for k in frame["kind"]]
    frame["hit_pct"] = [_pct(h, r) for h, r in zip(frame["hits"], frame["reads"], strict=True)]
    return frame


def _pct(hits: Any, reads: Any) -> float | None:
    """Hits as a share of accesses (%, two decimals), None without accesses."""
    total = int(hits) + int(reads)
    return round(100 * int(hits) / total, 2) if total else None


def _cache_basis(recent: Any, min_blocks: int) -> tuple[pd.DataFrame, bool, int]:
    """(the per-relation rows judged, whether they are the window's, the window's block accesses): the window's
    when it saw min_blocks block accesses, else the cumulative ones since the statistics reset."""
    window = recent.delta()
    in_window = int((window["hits"] + window["reads"]).sum())
    on_window = in_window >= min_blocks
    return (window if on_window else recent.cumulative()), on_window, in_window


def cache_relations_table(recent: Any, thresholds: dict[str, Any], limit: int) -> pd.DataFrame:
    """The relations most read from disk on the basis cache_hit judged (the window, or since the reset), for the
    notebook: kind, relation, table, blocks read and hit, hit ratio."""
    if recent is None or recent.error or recent.after.empty:
        return pd.DataFrame()
    rows, _, _ = _cache_basis(recent, thresholds["db_health"]["cache_min_blocks"])
    rows = rows.sort_values(["reads", "hits"], ascending=False).head(limit).copy()
    rows["hit_pct"] = [_pct(h, r) for h, r in zip(rows["hits"], rows["reads"], strict=True)]
    return rows.drop(columns="relid").reset_index(drop=True)


def seq_scan_params(thresholds: dict[str, Any]) -> dict[str, Any]:
    """index_usage.sql's parameters for the rows seq_scans judges: the query returns every table it would flag."""
    rule = thresholds["db_health"]
    return {"min_rows": rule["seq_scan_min_rows"], "min_scans": rule["seq_scan_min_scans"],
            "max_index_pct": rule["seq_scan_max_index_pct"]}


def vacuum_params(thresholds: dict[str, Any]) -> dict[str, Any]:
    """vacuum_stats.sql's parameter for the rows vacuum judges: the query returns every table it would flag."""
    return {"lag_factor": thresholds["db_health"]["vacuum_lag_factor"]}


def seq_scans(usage: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_SEQ_SCAN_HOT_TABLE: large tables read mostly by sequential scans (a missing index)."""
    if usage.empty:
        return []
    rule = thresholds["db_health"]
    hot = usage[(usage["live_rows"] >= rule["seq_scan_min_rows"]) & (usage["seq_scan"] >= rule["seq_scan_min_scans"])
                & (usage["index_use_pct"].fillna(0) < rule["seq_scan_max_index_pct"])]
    if hot.empty:
        return [Finding("DB_INDEX_USE_OK", Severity.OK, "No large table is read mostly by sequential scans.")]
    top = hot.iloc[0]
    return [Finding("DB_SEQ_SCAN_HOT_TABLE", Severity.WARNING,
                    f"{top['table_name']} ({top['live_rows']:,} rows) was read by {top['seq_scan']:,} sequential "
                    f"scans; only {top['index_use_pct'] or 0:.0f} % of its scans used an index.",
                    {"tables": hot["table_name"].tolist(), "seq_tup_read": int(top["seq_tup_read"])},
                    ["Find the statements that scan it: `database-connection-errors`, section Slow queries.",
                     "EXPLAIN them and add the missing index (CREATE INDEX CONCURRENTLY, through a migration)."],
                    [Measure("index_use", top["index_use_pct"] if pd.notna(top["index_use_pct"]) else 0, "%",
                             rule["seq_scan_max_index_pct"], None, 0, 100, low_is_bad=True),
                     Measure("hot_tables", len(hot), "", minimum=0)])]


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column of the frame, all False where the query did not return it."""
    if column not in frame:
        return pd.Series(False, index=frame.index)
    return frame[column].fillna(False).astype(bool)


def vacuum(stats: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_VACUUM_LAG: dead rows well past the autovacuum trigger point, either because autovacuum is disabled
    on the table (autovacuum_enabled=false, its own or its TOAST table's) or because it is not keeping up."""
    if stats.empty:
        return []
    rule = thresholds["db_health"]
    factor = rule["vacuum_lag_factor"]
    main_off = _flag(stats, "autovacuum_disabled")
    toast_off = _flag(stats, "toast_autovacuum_disabled")
    past = stats["dead_rows"] > factor * stats["autovacuum_at"]
    # a table autovacuum still runs on is judged only past a floor: a few hundred dead rows in a small busy table
    # between two autovacuum rounds are its normal rhythm, not lag
    lagging = stats[past & ((main_off | toast_off) | (stats["dead_rows"] >= rule["vacuum_lag_min_dead_rows"]))]
    if lagging.empty:
        return [Finding("DB_VACUUM_OK", Severity.OK, "Autovacuum keeps up: no table far past its trigger point.")]
    disabled = lagging[(main_off | toast_off)[lagging.index]]
    evidence: dict[str, Any] = {
        "tables": lagging["table_name"].tolist(),
        "dead_rows": {str(r.table_name): int(r.dead_rows) for r in lagging.itertuples()},
        "autovacuum_at": {str(r.table_name): int(r.autovacuum_at) for r in lagging.itertuples()}}
    steps = []
    if not disabled.empty:
        options = {str(r.table_name): [o for o, off in [("autovacuum_enabled", main_off[r.Index]),
                                                         ("toast.autovacuum_enabled", toast_off[r.Index])] if off]
                   for r in disabled.itertuples()}
        evidence["autovacuum_disabled"] = {t: ", ".join(f"{o}=false" for o in opts) for t, opts in options.items()}
        steps += [f"Re-enable autovacuum on {t}: ALTER TABLE {t} RESET ({', '.join(opts)}); "
                  "then VACUUM (ANALYZE) it off-peak." for t, opts in options.items()]
    top = lagging.iloc[0]
    title = f"{top['table_name']} holds {top['dead_rows']:,} dead rows, over {factor}x its autovacuum trigger point"
    if top.name in disabled.index:
        title += ": autovacuum is disabled on it" if main_off[top.name] else \
            ": autovacuum is disabled on its TOAST table (toast.autovacuum_enabled=false)"
    elif not disabled.empty:
        title += f"; autovacuum is disabled on {', '.join(disabled['table_name'])}"
    behind = lagging.drop(disabled.index)["table_name"].tolist()
    if behind:
        steps += ["Check for long transactions and leaked sessions: they stop vacuum from removing rows.",
                  f"Run VACUUM (ANALYZE) on {', '.join(behind)} off-peak; if it falls behind again, lower its "
                  "autovacuum_vacuum_scale_factor."]
    return [Finding("DB_VACUUM_LAG", Severity.WARNING, title + ".", evidence, steps)]


def rls(lint: pd.DataFrame) -> list[Finding]:
    """RLS_DISABLED (CRITICAL: exposed to every API key) and RLS_NO_POLICY (WARNING: no policy for a role the app
    uses, so its users read nothing; policies only for the monitoring role or another role do not count)."""
    if lint.attrs.get("error"):
        return []
    findings = []
    disabled = lint[lint["issue"] == "RLS_DISABLED"]
    if not disabled.empty:
        findings.append(Finding("RLS_DISABLED", Severity.CRITICAL,
                                f"{len(disabled)} exposed table(s) have row level security disabled.",
                                {"tables": (disabled["schema"] + "." + disabled["table_name"]).tolist()},
                                ["ALTER TABLE ... ENABLE ROW LEVEL SECURITY and add policies, through a migration.",
                                 "Until then anyone with the anon key can read and write these tables: "
                                 "check access logs (playbook: Data Breach) if they hold user data."]))
    no_policy = lint[lint["issue"] == "RLS_NO_POLICY"]
    if not no_policy.empty:
        names = (no_policy["schema"] + "." + no_policy["table_name"]).tolist()
        only_for = {name: roles for name, roles in zip(names, no_policy["policy_roles"], strict=True) if roles}
        said = "; ".join(f"{name} has policies only for {roles}" for name, roles in only_for.items())
        findings.append(Finding("RLS_NO_POLICY", Severity.WARNING,
                                f"{len(no_policy)} table(s) have RLS enabled but no policy for the app's roles "
                                f"(anon, authenticated): the app's users can read none of their rows"
                                + (f" ({said})." if said else "."),
                                {"tables": names, "policies_only_for": only_for},
                                ["Add the intended policies for authenticated (playbook, User Support: 'I can not "
                                 "access my data'); a policy for the monitoring role does not serve the app."]))
    return findings or [Finding("RLS_OK", Severity.OK,
                                "Every exposed table has RLS enabled with a policy for the app's roles.")]
