"""A real headless Chromium for the console's browser tests: the system's package, driven by playwright.

No browser is downloaded: playwright launches Debian's chromium (/usr/bin/chromium, or AIAS_CHROMIUM). The flags
are those a closed network needs (no background fetches to Google's hosts, no QUIC) and root needs (no sandbox).
With CI set, a missing Chromium fails the test; elsewhere it skips with what to install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 30_000   # one page action (a load, a click); a run is waited for with its own deadline


def chromium_path() -> str:
    """The system's Chromium; fails in CI (skips elsewhere) with the package to install when it is missing."""
    path = os.environ.get("AIAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = "Chromium is missing: install the chromium package (as root: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator:
    """A browser (playwright's Browser) on the system's Chromium, closed afterwards."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]' (the wheel only; no browser download)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, base_url: str):
    """A fresh context (no cookies shared with another user's) and a page in it, with the bounded timeouts."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()
