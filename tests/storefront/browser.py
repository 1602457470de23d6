"""Real Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright (no browser download),
one fresh user-data-dir per browser, so two browsers are two shoppers with their own localStorage."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
# quiet, local-only Chromium: no QUIC, no background fetches, no component or sync traffic off the machine
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACTION_TIMEOUT_MS = 15_000  # a loaded 2-core machine; a page that never answers still fails the test


@contextmanager
def chromium(playwright: Playwright) -> Iterator[BrowserContext]:
    profile = Path(tempfile.mkdtemp(prefix="storefront-chromium-"))
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1100, "height": 800},
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def watch_errors(page: Page) -> list[str]:
    """Uncaught JavaScript errors of the page (a broken module shows up here, not as a failed request)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors
