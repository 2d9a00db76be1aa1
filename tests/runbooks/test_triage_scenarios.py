"""triage, second half of the scenarios (a file of its own: a second xdist worker and sandbox run them)."""

from __future__ import annotations

import pytest

from .triage_cases import check_ranking, seen

SECOND_HALF = seen()[len(seen()) // 2:]


@pytest.mark.parametrize("name", SECOND_HALF)
def test_triage_names_the_runbook_for(run, scenario, name):
    check_ranking(run, scenario, name)
