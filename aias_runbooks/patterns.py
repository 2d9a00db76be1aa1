"""Error texts grouped by what they have in common: one normaliser for every table and finding that counts failures.

Two failures are the same problem when their texts differ only in values: ids, uuids, numbers, addresses, quoted
values. normalise() masks those and keeps the words and the names (a constraint, a table, a connector, a key), so
'duplicate key value violates unique constraint "subscription_tiers_user_id_key" DETAIL: Key (user_id)=(1f0e...)
already exists.' is one pattern however many users it hit. Tables group by it and show the whole text of one
example beside it; findings name the dominant pattern and, for a PostgreSQL constraint violation, the constraint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pandas as pd

# A quoted text that is a plain name says which thing failed ("subscription_tiers_user_id_key", 'tenant_id',
# "hubspot"): kept. Any other quoted text is a value: masked.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.$-]*")


def _quoted(found: re.Match) -> str:
    text = found[0]
    return text if _NAME.fullmatch(text[1:-1]) else f"{text[0]}?{text[0]}"


# Each step in order: (what it masks, its replacement).
_STEPS = [
    (re.compile(r"\bKey \(([^)]*)\)=\((?:[^()]|\([^()]*\))*\)"), r"Key (\1)=(?)"),      # PostgreSQL's DETAIL
    (re.compile(r"'[^']*'|\"[^\"]*\""), _quoted),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "?"),   # uuids
    (re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"), "?"),  # times
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "?"),                                       # email addresses
    (re.compile(r"\b[A-Za-z]+_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b"), "?"),                    # evt_1Pq..., sub_...
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{16,}\b", re.I), "?"),                               # hex ids, hashes
    (re.compile(r"(?<![A-Za-z_\d])(?<!HTTP )\d+(?:\.\d+)*"), "#"),   # numbers; an HTTP status is a kind: kept
]
_SPACES = re.compile(r"\s+")
_CONSTRAINT = re.compile(r'\bconstraint "([^"]+)"')


def normalise(text: object) -> str:
    """The text whole() with its values masked (ids, uuids, numbers, addresses, quoted values): equal for two
    occurrences of one problem. Empty for a missing text."""
    said = whole(text)
    for pattern, replacement in _STEPS:
        said = pattern.sub(replacement, said)
    return said


def whole(text: object) -> str:
    """The text whole, on one line (its whitespace made single spaces): how a table cell shows it. Empty for a
    missing text."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return ""
    return _SPACES.sub(" ", str(text)).strip()


def constraint(text: object) -> str | None:
    """The name of the PostgreSQL constraint a text says was violated ('... violates unique constraint "x"'), else
    None."""
    found = _CONSTRAINT.search(str(text)) if isinstance(text, str) else None
    return found.group(1) if found else None


def fingerprint(*parts: str) -> str:
    """A short stable id of a pattern (and its route, ...), to refer to it across runs."""
    return hashlib.md5("\x1f".join(parts).encode()).hexdigest()[:10]


def grouped(frame: pd.DataFrame, text: str, count: str | None = None, by: Sequence[str] = (),
            first: Sequence[str] = (), last: Sequence[str] = ()) -> pd.DataFrame:
    """One row per normalised `text` (within the `by` columns): the `by` columns, `pattern`, the `count` summed (or
    the rows counted, as `count` or "count"), `example`: the whole text of its most frequent member, then the
    earliest of each `first` column and the latest of each `last` column. Largest group first; the frame's attrs
    (a query's error) are kept."""
    name = count or "count"
    columns = [*by, "pattern", name, "example", *first, *last]
    if frame.attrs.get("error") or frame.empty:
        out = pd.DataFrame(columns=columns)
        out.attrs.update(frame.attrs)
        return out
    rows = frame.assign(pattern=frame[text].map(normalise), example=frame[text].map(whole),
                        **{name: frame[count] if count else 1})
    keys = [*by, "pattern"]
    examples = (rows.sort_values(name, ascending=False, kind="stable").drop_duplicates(keys)
                .set_index(keys)["example"])
    aggregate = {name: "sum"} | {c: "min" for c in first} | {c: "max" for c in last}
    out = rows.groupby(keys, dropna=False, sort=False).agg(aggregate).join(examples).reset_index()
    out = out.sort_values(name, ascending=False, kind="stable").reset_index(drop=True)[columns]
    out.attrs.update(frame.attrs)
    return out


def dominant(table: pd.DataFrame, count: str = "count") -> dict[str, object]:
    """What a grouped() table's largest group says: its pattern, example, count and share of all, and the
    constraint it names; {} for an empty table. For a finding's title and evidence."""
    if table.empty:
        return {}
    top, total = table.iloc[0], int(table[count].sum())
    said = {"pattern": top["pattern"], "example": top["example"], "count": int(top[count]), "of": total,
            "share_pct": round(100 * int(top[count]) / total, 1) if total else 0.0}
    return said | ({"constraint": name} if (name := constraint(top["example"])) else {})
