"""The console in a real browser (the system's headless Chromium, driven by playwright; tests/console/browser.py)
against a real serve and real runs of the real notebooks on the sandbox: what a postmortem author and an on-call
engineer do with it, click by click.

- browse: log in, filter the runs to one incident, open a report, compare it with the run before and see the new
  finding marked, rerun it with an edited parameter and see the new run appear in the list;
- four eyes: operator A files an approval request for terminating scenario db-connection-leak's sessions (a dry
  run from the rerun form), cannot approve it; approver B approves it; A applies it: the sessions are gone and the
  request's page shows its requested, approved and finished audit records. A request whose plan changed between
  its approval and the apply is refused, and the sessions stay.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from aias_runbooks.actions import approvals

from ..helpers import admin_session, cli, leaked_longer_than, wait_for
from .browser import chromium, new_page
from .server import LEAKING, RUN_DEADLINE_S, Console, filed, leaked_sessions

INCIDENT = "INC-4711"


def seed(console: Console, runbook: str, *args: str) -> str:
    """A real run filed into the console's archive by the CLI; its run id."""
    result = cli("run", runbook, *args, "--output", str(console.output))
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr
    report = next(line.split("report: ", 1)[1] for line in result.stdout.splitlines() if "report: " in line)
    return json.loads((Path(report).parent / "verdict.json").read_text())["run_id"]


def log_in(browser, console: Console, role: str):
    """A page of a fresh browser context, logged in through the login form as the user of `role`."""
    page = new_page(browser, console.url)
    page.goto("/console/login")
    page.get_by_label("Console token").fill(console.tokens[role])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/console/$"))
    return page


def run_ids_listed(page) -> list[str]:
    return [cell.inner_text() for cell in page.locator("table tbody tr td a[href^='/console/runs/']").all()]


def started(page) -> str:
    """The run id of the started page the rerun or apply form led to, once that run is filed (reloads until)."""
    page.wait_for_url(re.compile(r"/console/started/"))
    run_id = page.url.rsplit("/", 1)[1]

    def shown() -> bool:
        page.reload()
        return page.get_by_role("link", name="Open the report").count() > 0
    wait_for(shown, RUN_DEADLINE_S, f"run {run_id} to be filed")
    return run_id


def test_browse_compare_and_rerun(sandbox, scenario, console):
    before = seed(console, "health-check", "-p", "samples=10", "-p", "interval_ms=20", "--incident", INCIDENT)
    scenario("api-down")
    failing = seed(console, "health-check", "-p", "samples=10", "-p", "interval_ms=20", "--incident", INCIDENT)
    scenario("healthy")
    console.file_report(incident="INC-0001")     # another incident's run, which the filter leaves out
    with chromium() as browser:
        page = log_in(browser, console, "operator")
        assert len(run_ids_listed(page)) == 3
        page.get_by_label("Incident").fill(INCIDENT)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"incident=INC-4711"))
        assert run_ids_listed(page) == [failing, before], "one incident's runs, newest first"

        page.get_by_role("link", name=failing).click()
        assert "CRITICAL" in page.content() and "API_DOWN" in page.content()

        page.get_by_role("link", name="Compare with previous").click()
        new = page.locator("tr.new", has_text="API_DOWN")
        assert new.count() == 1 and new.first.is_visible()
        assert "new" in new.first.inner_text().lower(), "marked in words, not colour only"

        page.goto(f"/console/runs/{before}")
        page.get_by_role("link", name="Rerun").click()
        page.locator("#p-samples").fill("12")
        page.get_by_role("button", name="Start the run").click()
        rerun = started(page)
        page.goto(f"/console/?incident={INCIDENT}")
        assert run_ids_listed(page)[0] == rerun and len(run_ids_listed(page)) == 3
        page.get_by_role("link", name=rerun).click()
        facts = page.locator("dl.facts").last.inner_text()
        assert re.search(r"samples\s+12", facts), facts
    record = filed(console, rerun)
    assert (record["incident"], record["runbook"], record["status"]) == (INCIDENT, "health-check", "OK")


def request_from_the_console(page, console: Console, dry_run: str) -> approvals.Request:
    """Operator A reruns the four-eyes dry run against the leak, with the leak's criteria: it files a request."""
    page.goto(f"/console/runs/{dry_run}/rerun")
    page.locator("#p-leak_min_idle_s").fill("2")
    page.locator("#p-only_application").fill(LEAKING)
    page.get_by_role("button", name="Start the run").click()
    started(page)
    pending = approvals.requests(console.output, "pending")
    assert len(pending) == 1, pending
    return pending[0]


def test_four_eyes_apply_in_the_browser(sandbox, scenario, console):
    healthy = seed(console, "database-connection-errors", "--env", "sandbox-four-eyes", "--incident", INCIDENT)
    scenario("db-connection-leak")
    wait_for(lambda: leaked_longer_than(2.5), 60, "the leaked sessions to pass the 2 s criterion")
    with chromium() as browser:
        alice, bob = log_in(browser, console, "operator"), log_in(browser, console, "approver")
        request = request_from_the_console(alice, console, healthy)
        assert (request.requested_by, len(request.plan)) == ("alice", 8)

        alice.get_by_role("link", name="Approvals").first.click()
        alice.get_by_role("link", name=request.id).click()
        assert alice.get_by_role("button", name="Approve this exact plan").count() == 0, "A cannot approve A's"
        assert "another approver must approve it" in alice.content()

        bob.goto(f"/console/approvals/{request.id}")
        bob.get_by_role("button", name="Approve this exact plan").click()
        bob.wait_for_load_state()
        assert approvals.load(request.id, console.output).approved_by == "bob"

        alice.reload()
        alice.get_by_role("button", name=re.compile(r"^Apply")).click()
        applied = started(alice)
        wait_for(lambda: leaked_sessions() == 0, 30, "the leaked sessions to be gone")
        alice.goto(f"/console/approvals/{request.id}")
        phases = alice.locator("table").last.locator("tbody tr td:nth-child(2)").all_inner_texts()
        assert {"requested", "approved", "finished"} <= set(phases), phases
        assert applied in alice.content()

        scenario("healthy")                       # the leak again, fresh: a second request, then its plan changes
        scenario("db-connection-leak")
        wait_for(lambda: leaked_longer_than(2.5), 60, "the new leaked sessions to pass the 2 s criterion")
        second = request_from_the_console(alice, console, healthy)
        bob.goto(f"/console/approvals/{second.id}")
        bob.get_by_role("button", name="Approve this exact plan").click()
        bob.wait_for_load_state()
        with admin_session() as conn:            # one of the planned sessions ends before the apply
            conn.execute("SELECT pg_terminate_backend(%s)", (second.plan[0]["pid"],))
        wait_for(lambda: leaked_sessions() == 7, 30, "one planned session to end")
        alice.goto(f"/console/approvals/{second.id}")
        alice.get_by_role("button", name=re.compile(r"^Apply")).click()
        started(alice)
        alice.goto(f"/console/approvals/{second.id}")
        assert "the plan changed since it was approved" in alice.locator("table").last.inner_text()
    assert leaked_sessions() == 7, "a refused apply terminates nothing"
    assert approvals.load(second.id, console.output).status == "approved"


def test_on_a_phone_with_the_keyboard_only(console):
    """A phone-sized screen shows the runs without the page scrolling sideways (wide tables scroll in their own
    box), and the keyboard alone logs in and filters: every control is reachable with Tab and works with Enter."""
    for i in range(3):
        console.file_report(incident="INC-0002" if i else "INC-0003")
    with chromium() as browser:
        context = browser.new_context(base_url=console.url, viewport={"width": 390, "height": 844}, is_mobile=True)
        page = context.new_page()
        page.goto("/console/login")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")   # autofocus
        page.keyboard.type(console.tokens["viewer"])
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/console/$"))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.get_by_label("Incident").focus()
        page.keyboard.type("INC-0002")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"incident=INC-0002"))
        assert len(run_ids_listed(page)) == 2
        if shot := os.environ.get("AIAS_CONSOLE_SCREENSHOT"):
            page.screenshot(path=shot, full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        context.close()
