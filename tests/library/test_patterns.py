"""The one normaliser of error texts (aias_runbooks/patterns.py): two occurrences of one problem group as one, and
the names that say which thing failed survive it."""

from __future__ import annotations

import pandas as pd

from aias_runbooks import patterns


def test_values_are_masked_and_names_kept():
    one = ('UniqueViolation: duplicate key value violates unique constraint "subscription_tiers_user_id_key"\n'
           'DETAIL:  Key (user_id)=(1f0e4c2a-1111-2222-3333-444455556666) already exists.')
    other = one.replace("1f0e4c2a-1111-2222-3333-444455556666", "9d9d9d9d-0000-4000-8000-000000000001")
    assert patterns.normalise(one) == patterns.normalise(other) == (
        'UniqueViolation: duplicate key value violates unique constraint "subscription_tiers_user_id_key" '
        'DETAIL: Key (user_id)=(?) already exists.')
    assert patterns.constraint(one) == "subscription_tiers_user_id_key"
    assert patterns.normalise('HTTP 503 from upstream connector "hubspot"') == \
        'HTTP 503 from upstream connector "hubspot"', "an HTTP status is a kind of failure, a quoted name a culprit"
    assert patterns.normalise("rate limited: ip:203.0.113.7 blocked until 2026-12-07T02:00:11+00:00") == \
        "rate limited: ip:# blocked until ?"
    assert patterns.normalise("no user for Stripe customer cus_Q1abcdefGH (ada@example.com)") == \
        "no user for Stripe customer ? (?)"
    key_error = "Unhandled exception: KeyError 'tenant_id'"
    assert patterns.normalise(key_error) == key_error
    assert patterns.normalise('invalid input syntax for type uuid: "not a uuid"') == \
        'invalid input syntax for type uuid: "?"'


def test_a_table_groups_by_pattern_and_keeps_one_text_whole():
    frame = pd.DataFrame({"status": [500, 500, 400], "requests": [3, 1, 2],
                          "error": ["no user 11 of tenant 'acme'", "no user 12 of tenant 'acme'", "bad\n  signature"]})
    table = patterns.grouped(frame, "error", "requests", by=["status"])
    assert table.to_dict("records") == [
        {"status": 500, "pattern": "no user # of tenant 'acme'", "requests": 4,
         "example": "no user 11 of tenant 'acme'"},
        {"status": 400, "pattern": "bad signature", "requests": 2, "example": "bad signature"}]
    assert patterns.dominant(table, "requests") == {"pattern": "no user # of tenant 'acme'", "count": 4, "of": 6,
                                                    "example": "no user 11 of tenant 'acme'", "share_pct": 66.7}
