"""Real Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright (no browser download),
one fresh user-data-dir per browser, so two browsers are two people with their own localStorage. Plus the
steps the page tests share (register, find and add a product, check out)."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

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
# expect() has its own default (5 s), not the context's: a checkout through a payment outage's retries and
# breaker answered after more than 5 s in a loaded CI run
expect.set_options(timeout=ACTION_TIMEOUT_MS)
VIEWPORT = {"width": 1100, "height": 800}
DECLINED_CARD = "4000000000000002"
GOOD_CARD = "4242424242424242"
PASSWORD = "password-1"
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
ORDER_URL = re.compile(r"#/orders/([0-9a-f-]{36})$")


@contextmanager
def chromium(playwright: Playwright) -> Iterator[BrowserContext]:
    profile = Path(tempfile.mkdtemp(prefix="storefront-chromium-"))
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, viewport=VIEWPORT
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def browsers(base_url: str) -> Iterator[Callable[[str], Page]]:
    """`open(path)`: a page in a browser of its own at base_url + path. Every page's uncaught JavaScript
    errors fail the test at the end. Playwright's sync API runs its own event loop: enter this after the
    stack fixtures (they use asyncio) and leave it before them."""
    pages: list[tuple[Page, list[str]]] = []
    with ExitStack() as stack:
        playwright = stack.enter_context(sync_playwright())

        def open_page(path: str = "/") -> Page:
            page = stack.enter_context(chromium(playwright)).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + path)
            pages.append((page, errors))
            return page

        yield open_page
        problems = [error for _, errors in pages for error in errors]
        assert problems == [], f"JavaScript errors on the pages: {problems}"


def go(page: Page, hash_path: str) -> None:
    page.goto(page.url.split("#")[0] + hash_path)


def register(page: Page, name: str = "Ada") -> str:
    email = f"page-{uuid.uuid4().hex[:10]}@example.com"
    go(page, "#/register")
    page.fill("#register [name=name]", name)
    page.fill("#register [name=email]", email)
    page.fill("#register [name=password]", PASSWORD)
    page.click("#register button")
    expect(page.locator("#messages")).to_contain_text(f"Welcome, {name}")
    expect(page.locator("#nav")).to_contain_text("Log out")
    return email


def add_first_match(page: Page, query: str) -> str:
    go(page, "#/")
    page.fill("#search [name=q]", query)
    page.click("#search button")
    expect(page.locator("h1")).to_contain_text(f'matching "{query}"')
    card = page.locator("#products .card").first
    name = card.locator("a.name").inner_text()
    assert query.lower() in name.lower()
    card.locator("button.add").click()
    expect(page.locator("#messages")).to_contain_text(f"Added 1 x {name}")
    return name


def check_out(page: Page, card: str) -> None:
    if "#/cart" not in page.url:
        page.click("#nav-cart")
    page.select_option("#checkout [name=card]", card)
    page.click("#checkout button[type=submit]")


def buy(page: Page, query: str) -> str:
    """Add the first product matching `query` and pay with the good card; the new order's id."""
    add_first_match(page, query)
    check_out(page, GOOD_CARD)
    expect(page.locator("#messages .message.ok")).to_contain_text("Thank you! Order")
    expect(page).to_have_url(ORDER_URL)
    found = ORDER_URL.search(page.url)
    assert found is not None, page.url
    return found.group(1)


def shown_trace_id(page: Page) -> str:
    trace_id = page.locator("#trace-id").inner_text()
    assert TRACE_ID.match(trace_id), trace_id
    return trace_id


def order_emails(state_dir: str | Path, order_id: str, expected: Counter[str], within_s: float = 40) -> None:
    """Wait until the stack's local SMTP server holds the order's e-mails by event type (`order.paid`,
    ...), then check that each arrived exactly once: the notifications function delivers at least once
    and de-duplicates by event id, so a second copy is a bug. Waits a little past the arrival so that a
    late duplicate is seen too."""
    from sample_shop.notifications.mailserver import messages

    maildir = Path(state_dir) / "mail"

    def found() -> Counter[str]:
        return Counter(m["X-Shop-Event-Type"] for m in messages(maildir) if m["X-Shop-Order-Id"] == order_id)

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(found()[t] < n for t, n in expected.items()):
        time.sleep(0.25)
    time.sleep(1.0)
    got = found()
    assert got == expected, f"e-mails of order {order_id} in {maildir}: {dict(got)}, wanted {dict(expected)}"
