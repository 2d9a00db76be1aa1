"""Sandbox lifecycle: a second up, a stale state file, a busy port, and down stopping only its own."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import tempfile
from pathlib import Path

import httpx
import psutil
import stripe
from dotenv import dotenv_values

from aias_runbooks.sandbox import processes

from ..helpers import cli, free_port_base


def _env(folder: Path, base: int) -> dict[str, str]:
    return os.environ | {"AIAS_SANDBOX_DIR": str(folder), "AIAS_SANDBOX_PORT_BASE": str(base)}


def _state(folder: Path) -> dict:
    return json.loads((folder / "state.json").read_text())


def test_second_up_reuses_the_running_sandbox(sandbox):
    before = _state(sandbox)["components"]
    again = cli("sandbox", "up")
    assert again.returncode == 0 and "already up" in again.stdout
    assert _state(sandbox)["components"]["postgres"]["pid"] == before["postgres"]["pid"]
    status = cli("sandbox", "status")
    assert status.returncode == 0 and status.stdout.count("running") == 7


def test_a_clock_step_does_not_make_the_running_sandbox_look_dead(sandbox):
    """Linux derives a process's create_time from the wall clock: a step of a second (NTP, a busy VM) once made
    every sandbox process look dead, so `up` threw the state away and then found its own ports busy."""
    state = _state(sandbox)
    for record in state["components"].values():
        if isinstance(record, dict) and "create_time" in record:
            record["create_time"] += 1.0
    (sandbox / "state.json").write_text(json.dumps(state))
    again = cli("sandbox", "up", "--scenario", "healthy")
    assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr
    status = cli("sandbox", "status")
    assert status.returncode == 0 and status.stdout.count("running") == 7, status.stdout


def test_stale_state_and_busy_port_give_clear_messages(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="aias-test-stale-"))
    base = free_port_base()
    (folder / "state.json").write_text(json.dumps({
        "folder": str(folder), "ports": {}, "scenario": "healthy",
        "components": {"api": {"pid": 999999, "create_time": 1.0}}}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 2))
        busy.listen()
        result = cli("sandbox", "up", env=_env(folder, base))
    assert result.returncode == 3
    assert "no longer running" in result.stdout
    assert f"port {base + 2} (sandbox postgres) is in use" in result.stderr
    assert not (folder / "state.json").exists(), "the stale state file is cleaned up"
    status = cli("sandbox", "status", env=_env(folder, base))
    assert status.returncode == 1 and "stopped" in status.stdout


def _stripe(folder: Path) -> stripe.StripeClient:
    env = {k: v for k, v in dotenv_values(folder / "sandbox.env").items() if v}
    return stripe.StripeClient(env["AIAS_SANDBOX_STRIPE_SECRET_KEY"],
                               base_addresses={"api": env["AIAS_SANDBOX_STRIPE_API_BASE"]})


def _customers(folder: Path) -> set[str]:
    return {c.id for c in _stripe(folder).v1.customers.list({"limit": 100}).auto_paging_iter()}


def test_second_sandbox_on_pgserver_binaries_and_down_stops_only_its_own(sandbox):
    """A machine without PostgreSQL gets the pgserver wheel's server; each sandbox has its own Stripe (localstripe
    would share /tmp/localstripe.pickle); `down` leaves other sandboxes alone."""
    shared = Path("/tmp/localstripe.pickle")
    shared_before = shared.stat().st_mtime_ns if shared.exists() else None
    folder = Path(tempfile.mkdtemp(prefix="aias-test-second-"))
    folder.chmod(0o755)
    wheel_bin = Path(importlib.util.find_spec("pgserver").origin).parent / "pginstall" / "bin"
    env = _env(folder, free_port_base()) | {"AIAS_PG_BINDIR": str(wheel_bin)}
    up = cli("sandbox", "up", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    started = _state(folder)["components"]
    assert {"postgres", "api", "stripe", "services", "traffic", "worker", "visitors"} <= started.keys()
    assert started["postgres"]["bindir"] == str(wheel_bin) and started["postgres"]["version"].startswith("16")
    healthz = httpx.get(f"{started['api']['url']}/api/healthz", timeout=5)
    assert healthz.json()["ok"] is True, "the API reaches the wheel's Postgres"
    ours, theirs = _customers(sandbox), _customers(folder)
    new = _stripe(folder).v1.customers.create({"email": "only-in-the-second@example.test"}).id
    assert ours and theirs and not ours & theirs, "each sandbox seeds its own customers"
    assert new in _customers(folder) and _customers(sandbox) == ours, "a change in one Stripe stays in it"
    assert (folder / "localstripe.pickle").is_file() and (sandbox / "localstripe.pickle").is_file()
    assert (shared.stat().st_mtime_ns if shared.exists() else None) == shared_before, "the shared file is untouched"
    down = cli("sandbox", "down", env=env)
    assert down.returncode == 0 and "stopped visitors, worker, traffic, api, stripe, services, postgres" in down.stdout
    assert not any(processes.alive(record) for record in started.values())
    session = _state(sandbox)["components"]
    assert all(processes.alive(session[name]) for name in ("postgres", "api", "stripe", "traffic"))
    assert psutil.pid_exists(session["postgres"]["pid"])
