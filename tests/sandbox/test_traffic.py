"""The sandbox's everyday traffic (workloads.py traffic) outlives database errors: killed sessions, refused
connections. It logs a line, backs off, reconnects and carries on; it never dies and never spins."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from aias_runbooks.sandbox import processes

from ..helpers import sandbox_dsn, wait_for

SESSIONS = {"aias-api", "aias-api/sync-job"}   # the reads and the hot-row requests (aias-api), the job
RECOVERY_S = 25   # the job reconnects when it next wakes (every 4-8 s); the others within the 5 s backoff cap


def _traffic(sandbox: Path) -> tuple[dict, int]:
    state = json.loads((sandbox / "state.json").read_text())
    return state["components"]["traffic"], state["ports"]["postgres"]


def _backends(probe: psycopg.Connection, sandbox: Path) -> list[tuple[int, str, object]]:
    """(pid, application_name, query_start) of the traffic process's own sessions, matched by client port (the
    sandbox API's pool connects as aias-api too, and is left alone)."""
    record, pg_port = _traffic(sandbox)
    if not processes.alive(record):
        pytest.fail("the traffic process died; its log ends:\n" + "\n".join(_log_lines(sandbox)[-15:]))
    ports = [c.laddr.port for c in psutil.Process(record["pid"]).net_connections(kind="tcp")
             if c.raddr and c.raddr.port == pg_port]
    return probe.execute("SELECT pid, application_name, query_start FROM pg_stat_activity "
                         "WHERE client_port = ANY(%s) AND backend_type = 'client backend'", (ports,)).fetchall()


def _terminate(probe: psycopg.Connection, pids: list[int]) -> None:
    probe.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))


def _recovered(probe: psycopg.Connection, sandbox: Path, killed: set[int], since) -> bool:
    """All three sessions are back (new backends) and each has run a statement since `since`."""
    fresh = [(app, started) for pid, app, started in _backends(probe, sandbox) if pid not in killed]
    apps = [app for app, started in fresh if started is not None and started > since]
    return sorted(apps) == ["aias-api", "aias-api", "aias-api/sync-job"]


def _log_lines(sandbox: Path, name: str = "traffic") -> list[str]:
    return (sandbox / "logs" / f"{name}.log").read_text(errors="replace").splitlines()


def test_traffic_survives_its_sessions_being_terminated(sandbox):
    record, _ = _traffic(sandbox)
    log_before = len(_log_lines(sandbox))
    with psycopg.connect(sandbox_dsn(), autocommit=True) as probe:
        wait_for(lambda: len(_backends(probe, sandbox)) == 3, RECOVERY_S, "the traffic's three sessions")
        killed: set[int] = set()

        def reconnected() -> bool:
            return any(pid not in killed for pid, _, _ in _backends(probe, sandbox))

        for _ in range(4):   # in a row: each round kills whatever the previous one reconnected
            pids = [pid for pid, _, _ in _backends(probe, sandbox)]
            killed |= set(pids)
            _terminate(probe, pids)
            wait_for(reconnected, RECOVERY_S, "a traffic session to reconnect after pg_terminate_backend")
        pids = [pid for pid, _, _ in _backends(probe, sandbox)]
        killed |= set(pids)
        _terminate(probe, pids)
        since = probe.execute("SELECT now()").fetchone()[0]
        wait_for(lambda: _recovered(probe, sandbox, killed, since), RECOVERY_S,
                 "the traffic's three sessions back and running statements")
    assert processes.alive(record), "the traffic process died"
    added = _log_lines(sandbox)[log_before:]
    assert not [line for line in added if "Traceback" in line], "\n".join(added)
    assert any("terminating connection" in line for line in added), "\n".join(added)
    assert len(added) <= 30, "one line per error, repeats rate-limited:\n" + "\n".join(added)


def test_traffic_survives_refused_connections(sandbox):
    record, _ = _traffic(sandbox)
    log_before, pg_log_before = len(_log_lines(sandbox)), len(_log_lines(sandbox, "postgres"))
    with psycopg.connect(sandbox_dsn(), autocommit=True) as probe:
        wait_for(lambda: len(_backends(probe, sandbox)) == 3, RECOVERY_S, "the traffic's three sessions")
        limit = probe.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'aias_app'").fetchone()[0]
        try:
            probe.execute("ALTER ROLE aias_app CONNECTION LIMIT 0")
            killed = {pid for pid, _, _ in _backends(probe, sandbox)}
            _terminate(probe, list(killed))
            wait_for(lambda: any("too many connections for role" in line
                                 for line in _log_lines(sandbox)[log_before:]), 10,
                     "the traffic to log its refused connection")
            refused_at = time.monotonic()
            time.sleep(3)   # the outage itself: connections keep being refused this long
            assert processes.alive(record), "the traffic process died while refused"
            assert _backends(probe, sandbox) == [], "connection limit 0, yet the traffic is connected"
        finally:
            probe.execute(f"ALTER ROLE aias_app CONNECTION LIMIT {int(limit)}")
        outage_s = time.monotonic() - refused_at
        since = probe.execute("SELECT now()").fetchone()[0]
        wait_for(lambda: _recovered(probe, sandbox, killed, since), RECOVERY_S,
                 "the traffic to reconnect once connections are allowed again")
    assert processes.alive(record), "the traffic process died"
    added = _log_lines(sandbox)[log_before:]
    assert not [line for line in added if "Traceback" in line], "\n".join(added)
    assert len(added) <= 30, "one line per error, repeats rate-limited:\n" + "\n".join(added)
    # backing off, not spinning: the server saw a few attempts a second at most (a busy loop makes hundreds)
    attempts = sum("too many connections for role" in line for line in _log_lines(sandbox, "postgres")[pg_log_before:])
    assert attempts <= 3 * (outage_s + 10), f"{attempts} refused connection attempts in ~{outage_s:.0f} s"
