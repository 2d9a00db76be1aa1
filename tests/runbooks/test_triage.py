"""triage through the runner: all clear on healthy, causes ranked before symptoms, and the first half of the
scenarios ranked to the runbook that diagnoses each."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest

from aias_runbooks.checks import monitoring, triage
from aias_runbooks.findings import Finding, Severity
from aias_runbooks.thresholds import load_thresholds

from ..helpers import HOSTILE_APP, admin_session, forget_recent_failures, live_markup, sandbox_dsn, wait_for
from .triage_cases import QUIET, check_ranking, seen

HALF = seen()[: len(seen()) // 2]


@pytest.mark.parametrize("name", sorted(QUIET))
def test_all_clear_with_every_signal_read_on(run, scenario, name):
    forget_recent_failures()
    scenario(name)
    result = run("triage")
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    assert list(result.codes) == ["TRIAGE_ALL_CLEAR"], result.codes
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert (result.folder / "report.html").is_file()


def test_our_own_signature_probe_is_not_a_failed_delivery(run, sandbox):
    """stripe-webhook-failures' probe posts an unsigned event the endpoint must refuse (400, logged like any
    delivery): triage and monitoring judge the endpoint's deliveries without it."""
    from aias_runbooks.checks import webhooks
    from aias_runbooks.settings import load_environment

    forget_recent_failures()
    env = load_environment("sandbox")
    probes = webhooks.probe(env.api_base_url, env.secret("stripe_webhook_secret").reveal())
    assert list(probes["status"]) == [200, 400], probes
    with admin_session() as conn:
        refused = conn.execute("SELECT count(*) FROM public.api_requests WHERE path = '/api/stripe/webhook' "
                               "AND status = 400 AND request_id LIKE 'aias-probe-%'").fetchone()[0]
    assert refused == 1
    for slug in ("triage", "monitoring"):
        result = run(slug)
        assert result.proc.returncode == 0, (slug, result.verdict["findings"])


def _wait_until_leaked(leaked: psycopg.Connection) -> None:
    """Until the session has sat idle in its transaction past what triage counts as a leak."""
    with admin_session() as conn:
        wait_for(lambda: conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'idle in transaction' "
            "AND now() - state_change > make_interval(secs => %s)",
            (leaked.info.backend_pid, triage.LEAK_MIN_IDLE_S + 1)).fetchone()[0], 60, "an idle leak")


def test_a_leak_named_by_a_hostile_client_is_ranked_and_its_name_stays_text(run, sandbox):
    """application_name is set by any client: a leaked session named like a markdown link and an HTML tag is
    ranked to database-connection-errors, and the name reaches the report as text, never as markup."""

    forget_recent_failures()
    leaked = psycopg.connect(sandbox_dsn(), application_name=HOSTILE_APP)
    try:
        leaked.execute("SELECT 1")   # a transaction left open: idle in transaction
        _wait_until_leaked(leaked)
        result = run("triage")
    finally:
        leaked.close()
    leak = next(f for f in result.verdict["findings"] if f["code"] == "DB_CONNECTION_LEAK")
    assert leak["evidence"]["next_runbook"] == "database-connection-errors"
    assert HOSTILE_APP in leak["evidence"]["applications"]
    html = (result.folder / "report.html").read_text()
    assert not live_markup(html), live_markup(html)
    assert "onerror=alert(2)" in html   # shown, escaped


def test_the_recipe_runs_from_the_library_and_ranks_a_leak_to_its_runbook(sandbox):
    """triage_steps without a notebook or a runner: each section returns its table and ranking() records the
    leaked session ranked to database-connection-errors, its command the first next step."""
    from aias_runbooks import runbook, triage_steps

    forget_recent_failures()
    leaked = psycopg.connect(sandbox_dsn(), application_name="aias-test-triage-steps")
    rb = runbook.start("triage", "sandbox")
    try:
        leaked.execute("SELECT 1")   # a transaction left open: idle in transaction
        _wait_until_leaked(leaked)
        steps = triage_steps.Triage(rb, timeout_s=3.0, window_minutes=15)
        tables = [steps.platform(10), steps.database(), steps.key_metrics(), steps.billing(), steps.workflows(),
                  steps.signups()]
        assert steps.access() is None and steps.upkeep() is None
        ranking = steps.ranking()
    finally:
        leaked.close()
        if rb.connection() is not None:
            rb.connection().close()
    assert all(isinstance(table, pd.DataFrame) for table in tables)
    assert set(tables[0]["subsystem"]) >= {"API", "Database"}
    leak = next(f for f in rb.findings if f.code == "DB_CONNECTION_LEAK")
    assert leak.evidence["next_runbook"] == "database-connection-errors"
    assert leak.next_steps[0] == "Run next: `aias-runbooks run database-connection-errors --env sandbox`"
    row = ranking[ranking["run next"] == "database-connection-errors"]
    assert "DB_CONNECTION_LEAK" in row["findings"].iloc[0].split(", ")
    ranks = sorted(f.evidence["rank"] for f in rb.findings if f.severity is not Severity.OK)
    assert ranks == list(range(1, len(ranks) + 1))


def test_a_cause_ranks_before_its_symptom_within_one_severity():
    """A saturated pool explains an API answering 503: database-connection-errors first, whatever the order found."""
    api = Finding("API_UNHEALTHY", Severity.CRITICAL, "503")
    pool = Finding("DB_POOL_SATURATED", Severity.CRITICAL, "full")
    lag = Finding("DB_VACUUM_LAG", Severity.WARNING, "dead rows")
    table = triage.rank([lag, api, pool], "production")
    assert list(table["run next"]) == ["database-connection-errors", "incident-system-down", "database-health"]
    assert table["command"][0] == "aias-runbooks run database-connection-errors --env production"
    out = triage.ranked([lag, api], "production", recorded=[pool])
    assert [f.code for f in out] == ["API_UNHEALTHY", "DB_VACUUM_LAG"]
    assert pool.evidence["rank"] == 1 and api.evidence["rank"] == 2 and lag.evidence["rank"] == 3


def test_each_key_metric_sends_to_the_runbook_monitoring_names():
    assert {m.code: m.runbook for m in monitoring.metrics(load_thresholds())}.items() <= triage.NEXT.items()


@pytest.mark.parametrize("name", HALF)
def test_triage_names_the_runbook_for(run, scenario, name):
    check_ranking(run, scenario, name)
