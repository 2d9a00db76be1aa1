"""Check Database Health, the slow failures: transaction ID wraparound, replication slots retaining WAL, sequences
near the largest value their column holds, invalid and duplicate indexes. None of these hurts today; each takes a
Postgres down (read-only to stop wraparound, a full disk, inserts failing, writes slowed) weeks later if left.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from ..findings import Finding, Measure, Severity

MB = 1024 * 1024
INT4_MAX = 2147483647
QUERIES = ("xid_age_databases", "xid_age_tables", "xid_horizon", "replication_slots", "sequence_room",
           "invalid_indexes", "duplicate_indexes")
LIMITED = {"xid_age_tables", "xid_horizon"}   # the queries that take :limit
SLOT_BEYOND = {"unreserved", "lost"}          # wal_status: its WAL is past max_slot_wal_keep_size, or already gone


class Queries(Protocol):
    """What `upkeep` reads through: a Runbook (rb.query and rb.thresholds)."""

    thresholds: dict[str, Any]

    def query(self, name: str, **params: Any) -> pd.DataFrame: ...


def upkeep(rb: Queries, top: int = 5) -> tuple[dict[str, pd.DataFrame], list[Finding]]:
    """Every query of these checks through `rb` and every finding they make, for a caller that shows neither
    (triage): (frames by query name, findings). The notebook runs the same checks one section at a time."""
    frames = {name: rb.query(name, **({"limit": top} if name in LIMITED else {})) for name in QUERIES}
    rules = rb.thresholds
    found = [*xid_wraparound(frames["xid_age_databases"], frames["xid_age_tables"], frames["xid_horizon"], rules),
             *replication_slots(frames["replication_slots"], rules),
             *sequences(frames["sequence_room"], rules),
             *indexes(frames["invalid_indexes"], frames["duplicate_indexes"])]
    return frames, found


def _failed(*frames: pd.DataFrame) -> bool:
    """A query that could not be answered: Runbook.query recorded why (DB_QUERY_FAILED, DB_UNREACHABLE)."""
    return any(frame.attrs.get("error") for frame in frames)


def _severity(value: float | None, warning: float, critical: float) -> Severity:
    """CRITICAL at or past the critical line, WARNING at or past the warning line (a share reaches a line)."""
    if value is None:
        return Severity.OK
    return Severity.CRITICAL if value >= critical else Severity.WARNING if value >= warning else Severity.OK


def _share(row: Any, kind: str) -> float:
    value = getattr(row, f"{kind}_pct")
    return float(value) if pd.notna(value) else 0.0


# -- transaction ID wraparound ----------------------------------------------------------------------------------


def xid_wraparound(databases: pd.DataFrame, tables: pd.DataFrame, holders: pd.DataFrame,
                   thresholds: dict[str, Any]) -> list[Finding]:
    """DB_XID_WRAPAROUND when a database's or a table's transaction ID (or multixact) age reaches
    db_upkeep.xid_warning_pct of its autovacuum_freeze_max_age (CRITICAL at xid_critical_pct), naming the oldest
    table (or database) and what holds the horizon back; DB_XID_AGE_OK otherwise."""
    if _failed(databases, tables) or databases.empty:
        return []
    rule = thresholds["db_upkeep"]
    places = [("database", str(r.database), kind, r) for r in databases.itertuples() for kind in ("xid", "mxid")]
    places += [("table", str(r.table_name), kind, r) for r in tables.itertuples() for kind in ("xid", "mxid")]
    # the worst share first; a table before its database at the same share: the table is where to act
    kind_of, name, which, row = max(places, key=lambda p: (_share(p[3], p[2]), p[0] == "table"))
    worst = {k: max((_share(p[3], k) for p in places if p[2] == k), default=0.0) for k in ("xid", "mxid")}
    measures = [Measure(f"{k}_used", worst[k], "%", rule["xid_warning_pct"], rule["xid_critical_pct"], 0)
                for k in ("xid", "mxid")]
    evidence: dict[str, Any] = {
        "databases": {str(r.database): {"xid_age": int(r.xid_age), "xid_pct": _share(r, "xid"),
                                        "mxid_age": int(r.mxid_age), "mxid_pct": _share(r, "mxid")}
                      for r in databases.itertuples()},
        "oldest_tables": {str(r.table_name): {"xid_age": int(r.xid_age),
                                              "xid_freeze_max_age": int(r.xid_freeze_max_age),
                                              "xid_pct": _share(r, "xid"), "mxid_pct": _share(r, "mxid")}
                          for r in tables.itertuples()}}
    severity = _severity(_share(row, which), rule["xid_warning_pct"], rule["xid_critical_pct"])
    # a holder (an xmin) is judged against the transaction ID freeze age of what is old: the culprit's, else the
    # server's
    judged = int(row.xid_freeze_max_age if severity is not Severity.OK else databases["xid_freeze_max_age"].iloc[0])
    held = _horizon_holders(holders, rule["xid_holder_pct"] / 100 * judged)
    if held:
        evidence["horizon_held_by"] = held
    if severity is Severity.OK:
        return [Finding("DB_XID_AGE_OK", Severity.OK,
                        f"Transaction ID and multixact ages are under {rule['xid_warning_pct']} % of the freeze age "
                        f"everywhere (oldest: {name}, {_share(row, which):.1f} %).", evidence, measures=measures)]
    label = "transaction ID" if which == "xid" else "multixact"
    age, limit = int(getattr(row, f"{which}_age")), int(getattr(row, f"{which}_freeze_max_age"))
    own = (kind_of == "table" and limit < int(databases[f"{which}_freeze_max_age"].iloc[0]))
    setting = "autovacuum_freeze_max_age" if which == "xid" else "autovacuum_multixact_freeze_max_age"
    title = (f"{kind_of.capitalize()} {name}: {label} age {age:,} is {_share(row, which):.0f} % of its {setting} "
             f"({limit:,}{', its own storage parameter' if own else ''})")
    if held:
        first = next(iter(held))
        title += f"; the horizon is held back by {held[first]['kind']} {first}"
    evidence |= {"culprit": name, "culprit_kind": kind_of, "age": age, "freeze_max_age": limit}
    return [Finding("DB_XID_WRAPAROUND", severity, title + ".", evidence, _xid_steps(kind_of, name, held),
                    measures)]


def _horizon_holders(holders: pd.DataFrame, floor: float) -> dict[str, Any]:
    """The sessions, prepared transactions, slots and standbys whose xmin is at least `floor` transactions old
    (db_upkeep.xid_holder_pct of the freeze age judged), oldest first: vacuum cannot freeze past them."""
    if holders.attrs.get("error") or holders.empty:
        return {}
    old = holders[holders["xmin_age"] >= floor]
    return {str(r.holder): {"kind": str(r.kind), "xmin_age": int(r.xmin_age), "detail": r.detail}
            for r in old.itertuples()}


def _xid_steps(kind_of: str, name: str, held: dict[str, Any]) -> list[str]:
    steps = []
    for holder, info in held.items():
        if info["kind"].startswith("replication slot"):
            steps.append(f"Release the horizon held by replication slot {holder}: restart its consumer, or drop it "
                         f"if the consumer is gone (SELECT pg_drop_replication_slot('{holder}')).")
        elif info["kind"] == "prepared transaction":
            steps.append(f"Finish prepared transaction '{holder}': COMMIT PREPARED or ROLLBACK PREPARED it.")
        elif info["kind"] == "session":
            steps.append(f"End the transaction of session {holder} (`database-connection-errors` terminates "
                         "leaked sessions under guard).")
        else:
            steps.append(f"Check standby {holder}: its hot_standby_feedback holds the horizon for its queries.")
    if kind_of == "table":
        steps.append(f"Run VACUUM (FREEZE, VERBOSE) {name} off-peak (the table stays usable); autovacuum forces one "
                     "at 100 %, and at 2^31 the server stops taking writes.")
    else:
        steps.append(f"Connect to database {name} and VACUUM (FREEZE) its oldest tables (this run sees the tables of "
                     "its own database only); a database that takes no connections is frozen by autovacuum itself.")
    return steps


# -- replication slots ------------------------------------------------------------------------------------------


def _mb(value: Any) -> float | None:
    return round(float(value) / MB, 1) if pd.notna(value) else None


def replication_slots(slots: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_REPLICATION_SLOT_INACTIVE: a slot nobody consumes, retaining db_upkeep.slot_inactive_min_mb of WAL or
    more; DB_REPLICATION_SLOT_RETAINING_WAL: an active slot retaining db_upkeep.slot_retained_warning_mb. Either is
    CRITICAL at slot_retained_critical_mb, or once its WAL is past max_slot_wal_keep_size (wal_status unreserved or
    lost). DB_REPLICATION_SLOTS_OK otherwise."""
    if _failed(slots):
        return []
    rule = thresholds["db_upkeep"]
    slots = slots.assign(retained_mb=slots["retained_bytes"].map(_mb), safe_mb=slots["safe_wal_bytes"].map(_mb))
    beyond = slots["wal_status"].isin(SLOT_BEYOND)
    retained = slots["retained_mb"].fillna(0)
    inactive = slots[~slots["active"].astype(bool) & ((retained >= rule["slot_inactive_min_mb"]) | beyond)]
    busy = slots[slots["active"].astype(bool) & ((retained >= rule["slot_retained_warning_mb"]) | beyond)]
    found = []
    for code, chosen, line in (("DB_REPLICATION_SLOT_INACTIVE", inactive, rule["slot_inactive_min_mb"]),
                               ("DB_REPLICATION_SLOT_RETAINING_WAL", busy, rule["slot_retained_warning_mb"])):
        if not chosen.empty:
            found.append(_slot_finding(code, chosen, slots, line, rule))
    if found:
        return found
    most = float(retained.max()) if len(slots) else 0.0
    return [Finding("DB_REPLICATION_SLOTS_OK", Severity.OK,
                    f"No replication slot is inactive or retaining {rule['slot_retained_warning_mb']} MB of WAL "
                    f"({len(slots)} slot(s)).", {"slots": _slot_evidence(slots)},
                    measures=[Measure("retained_wal", most, "MB", rule["slot_retained_warning_mb"],
                                      rule["slot_retained_critical_mb"], 0)])]


def _slot_evidence(slots: pd.DataFrame) -> dict[str, Any]:
    return {str(r.slot_name): {"type": str(r.slot_type), "plugin": r.plugin, "active": bool(r.active),
                               "wal_status": r.wal_status, "retained_mb": r.retained_mb, "safe_wal_mb": r.safe_mb,
                               "catalog_xmin_age": r.catalog_xmin_age}
            for r in slots.itertuples()}


def _slot_finding(code: str, chosen: pd.DataFrame, slots: pd.DataFrame, line: float,
                  rule: dict[str, Any]) -> Finding:
    """One finding for the slots of `chosen`, the one retaining most named first."""
    top = chosen.sort_values("retained_mb", ascending=False, na_position="first").iloc[0]
    beyond = chosen["wal_status"].isin(SLOT_BEYOND).any()
    most = float(chosen["retained_mb"].fillna(0).max())
    severity = Severity.CRITICAL if beyond or most >= rule["slot_retained_critical_mb"] else Severity.WARNING
    name, held = str(top["slot_name"]), top["retained_mb"]
    state = "inactive (no consumer)" if code.endswith("INACTIVE") else "active"
    plugin = f", {top['plugin']}" if pd.notna(top["plugin"]) else ""
    title = (f"Replication slot {name} ({top['slot_type']}{plugin}) is {state} and retains "
             f"{held if held is not None else 'unknown'} MB of WAL")
    if top["wal_status"] in SLOT_BEYOND:
        title += f" (wal_status {top['wal_status']}: past max_slot_wal_keep_size)"
    keep = int(top["max_slot_wal_keep_mb"])
    title += (": it grows until the disk is full" if keep < 0
              else f"; max_slot_wal_keep_size {keep} MB caps it (safe_wal_size {top['safe_mb']} MB left)")
    names = chosen["slot_name"].astype(str).tolist()
    steps = ([f"If the consumer of {n} is gone for good, drop the slot: SELECT pg_drop_replication_slot('{n}'); "
              "otherwise restart the consumer (Supabase Realtime, a subscriber) so it confirms the WAL it read."
              for n in names] if code.endswith("INACTIVE") else
             [f"Find why the consumer of {n} lags (its subscriber's logs, network, a long transaction on it); the "
              "WAL is kept until it confirms it." for n in names])
    if keep < 0:
        steps.append("Set max_slot_wal_keep_size so one forgotten slot cannot fill the disk (the slot is lost "
                     "instead and its consumer must resync).")
    evidence = {"slots": names, "culprit": name, "retained_mb": held, "wal_status": top["wal_status"],
                "max_slot_wal_keep_mb": keep, "all_slots": _slot_evidence(slots)}
    return Finding(code, severity, title + ".", evidence, steps,
                   [Measure("retained_wal", most, "MB", line, rule["slot_retained_critical_mb"], 0)])


# -- sequences --------------------------------------------------------------------------------------------------


def sequences(room: pd.DataFrame, thresholds: dict[str, Any]) -> list[Finding]:
    """DB_SEQUENCE_NEAR_MAX when a sequence has used db_upkeep.sequence_warning_pct of what the column it feeds can
    hold (CRITICAL at sequence_critical_pct); DB_SEQUENCE_UNREADABLE (UNKNOWN, with the GRANT that allows it) for
    a sequence with an integer or smallint ceiling this role may not read; DB_SEQUENCES_OK otherwise. A sequence
    with a bigint ceiling it may not read is listed, not judged: a bigint lasts centuries at any insert rate."""
    if _failed(room):
        return []
    rule = thresholds["db_upkeep"]
    readable = room[room["readable"].astype(bool)]
    unread = room[~room["readable"].astype(bool)]
    small = unread[unread["limit_value"].astype(float).abs() <= INT4_MAX]
    used = readable["used_pct"].astype(float)
    most = float(used.max()) if len(readable) and used.notna().any() else None
    measure = Measure("used", most, "%", rule["sequence_warning_pct"], rule["sequence_critical_pct"], 0, 100)
    found = []
    near = readable[used >= rule["sequence_warning_pct"]]
    if not near.empty:
        found.append(_near_max(near, rule, measure))
    if not small.empty:
        role = str(small["reader"].iloc[0])
        found.append(Finding(
            "DB_SEQUENCE_UNREADABLE", Severity.UNKNOWN,
            f"{len(small)} sequence(s) feeding an integer column cannot be read by {role}, so how near they are to "
            f"running out is unknown: {', '.join(small['sequence_name'].astype(str))}.",
            {"sequences": {str(r.sequence_name): str(r.column_name) for r in small.itertuples()}, "role": role},
            [f"GRANT SELECT ON SEQUENCE {n} TO {role}; (as the sequence's owner: it reads the value, it cannot "
             "change it)" for n in small["sequence_name"].astype(str)]))
    if near.empty:
        found.append(Finding("DB_SEQUENCES_OK", Severity.OK,
                             f"No sequence has used {rule['sequence_warning_pct']} % of what its column holds "
                             f"({len(readable)} read).",
                             {"not_read_bigint": sorted(set(unread["sequence_name"].astype(str))
                                                        - set(small["sequence_name"].astype(str)))},
                             measures=[measure]))
    return found


def _near_max(near: pd.DataFrame, rule: dict[str, Any], measure: Measure) -> Finding:
    top = near.iloc[0]   # the query orders by the share used
    severity = _severity(float(top["used_pct"]), rule["sequence_warning_pct"], rule["sequence_critical_pct"])
    name, column = str(top["sequence_name"]), str(top["column_name"])
    title = (f"Sequence {name} has used {float(top['used_pct']):.1f} % of {top['column_type']} column {column} "
             f"({int(top['last_value']):,} of {int(top['limit_value']):,})")
    if top["sequence_type"] != top["column_type"]:
        title += (f": a {top['sequence_type']} sequence feeding an {top['column_type']} column, the column runs "
                  "out first")
    table = column.rsplit(".", 1)[0]
    steps = [f"Widen the column before it runs out: ALTER TABLE {table} ALTER COLUMN {column.rsplit('.', 1)[1]} TYPE "
             "bigint (it rewrites the table under an exclusive lock: plan a maintenance window, or add a bigint "
             "column and backfill it).",
             "Until then, inserts fail with 'integer out of range' (or 'reached maximum value of sequence') once "
             "it is reached."]
    evidence = {"culprit": name, "column": column,
                "sequences": {str(r.sequence_name): {"column": str(r.column_name), "column_type": str(r.column_type),
                                                     "sequence_type": str(r.sequence_type),
                                                     "last_value": int(r.last_value), "limit": int(r.limit_value),
                                                     "used_pct": float(r.used_pct)} for r in near.itertuples()}}
    return Finding("DB_SEQUENCE_NEAR_MAX", severity, title + ".", evidence, steps, [measure])


# -- indexes ----------------------------------------------------------------------------------------------------


def indexes(invalid: pd.DataFrame, duplicates: pd.DataFrame) -> list[Finding]:
    """DB_INDEX_INVALID (WARNING): an index left invalid by a failed concurrent build (one still building is
    not judged); DB_INDEX_DUPLICATE (WARNING): indexes of one table on the same columns, expressions and
    predicate; DB_INDEXES_OK otherwise."""
    if _failed(invalid, duplicates):
        return []
    found = []
    broken = invalid[~invalid["building"].astype(bool)]
    if not broken.empty:
        top = broken.iloc[0]
        name, table = str(top["index_name"]), str(top["table_name"])
        title = f"Index {name} on {table} is invalid: a concurrent build failed and no query uses it"
        if bool(top["is_unique"]):
            title += "; the uniqueness it was built for is not enforced"
        steps = [f"DROP INDEX CONCURRENTLY {r.index_name}; then "
                 + ("remove the duplicate rows that failed it and build it again with CREATE UNIQUE INDEX "
                    "CONCURRENTLY" if r.is_unique else f"REINDEX INDEX CONCURRENTLY {r.index_name} instead of both")
                 + " (through a migration)." for r in broken.itertuples()]
        found.append(Finding("DB_INDEX_INVALID", Severity.WARNING, title + ".",
                             {"indexes": {str(r.index_name): {"table": str(r.table_name), "unique": bool(r.is_unique),
                                                              "maintained_on_write": bool(r.maintained_on_write),
                                                              "bytes": int(r.index_bytes),
                                                              "definition": str(r.definition)}
                                          for r in broken.itertuples()},
                              "culprit": name, "table": table}, steps))
    if not duplicates.empty:
        top = duplicates.iloc[0]
        kept, extra = str(top["indexes"][0]), [str(i) for i in top["indexes"][1:]]
        found.append(Finding(
            "DB_INDEX_DUPLICATE", Severity.WARNING,
            f"Table {top['table_name']} has duplicate indexes: {', '.join(extra)} "
            f"repeat{'s' if len(extra) == 1 else ''} {kept} (same columns and predicate); every write maintains both"
            + (f", and {len(duplicates) - 1} more set(s) elsewhere." if len(duplicates) > 1 else "."),
            {"duplicates": {str(r.table_name) + ": " + str(r.indexes[0]): {"table": str(r.table_name),
                                                                           "keep": str(r.indexes[0]),
                                                                           "drop": [str(i) for i in r.indexes[1:]],
                                                                           "definition": str(r.kept_definition),
                                                                           "duplicate_bytes": int(r.duplicate_bytes)}
                            for r in duplicates.itertuples()},
             "culprit": extra[0], "table": str(top["table_name"])},
            [f"DROP INDEX CONCURRENTLY {i}; (keep {r.indexes[0]}), through a migration."
             for r in duplicates.itertuples() for i in r.indexes[1:]]))
    building = invalid[invalid["building"].astype(bool)]["index_name"].astype(str).tolist()
    return found or [Finding("DB_INDEXES_OK", Severity.OK, "No invalid or duplicate index.",
                             {"building": building} if building else {})]
