"""Start and restart the sandbox's Stripe (server.py: localstripe), seeded from the database and delivering its
webhooks to the sandbox API; the database then records what the seed created (seeding.record_seeded)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import processes
from ...platform.database.postgres import admin_connection
from . import seeding


def start(state: dict[str, Any], save: Callable[[], None]) -> None:
    """localstripe with this sandbox's own store, seeded from the database, delivering to the sandbox API."""
    folder, port = Path(state["folder"]), state["ports"]["stripe"]
    webhook = f"http://127.0.0.1:{state['ports']['api']}/api/stripe/webhook"
    record = processes.spawn([sys.executable, "-m", "aias_runbooks.sandbox.emulators.stripe.server", "--port",
                              str(port), "--state-dir", str(folder), "--webhook-url", webhook],
                             folder / "logs" / "localstripe.log", cwd=folder, env=processes.component_env(folder))
    url = f"http://127.0.0.1:{port}/v1/customers"
    try:   # localstripe creates each paying user's customer and subscription at start: ~20 ms each on two cores
        paying = len(json.loads((folder / "stripe-seed.json").read_text()))
    except (OSError, ValueError):
        paying = 0
    processes.wait_until(lambda: (folder / "stripe-seeded.json").exists()
                         and processes.http_ok(url, auth=("sk_test_ready", "")),
                         record, "localstripe", timeout=30 + 0.05 * paying)
    state["components"]["stripe"] = record | {"port": port, "url": f"http://127.0.0.1:{port}"}
    save()
    with admin_connection(folder) as conn:
        seeding.record_seeded(conn, folder)
    state["billing_since"] = time.time()
    save()


def restart(state: dict[str, Any], save: Callable[[], None]) -> None:
    """Both sides of billing back to the seed: the database's subscriptions and events, and a fresh Stripe."""
    folder = Path(state["folder"])
    processes.stop(state["components"].pop("stripe", None))
    with admin_connection(folder) as conn:
        seeding.restore(conn, folder, state.get("billing_since", 0))
    seeding.forget_stripe(folder)
    start(state, save)
