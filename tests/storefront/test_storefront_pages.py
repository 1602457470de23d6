"""The storefront in real Chromium against the session stack (real gateway and services): register, search,
add to the cart, a declined card then a good one, the order in the history; the click's trace id on the
page is the trace the shop recorded; errors a shopper causes (declined card, out of stock, an expired
session) are messages on the page, never a blank page or a JSON body."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from shop.helpers import spans_of_trace
from storefront.browser import chromium, watch_errors

from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack
DECLINED = "4000000000000002"
GOOD = "4242424242424242"
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def page(stack_ready: StackDescriptor) -> Iterator[Page]:
    """A fresh Chromium on the storefront. Playwright's sync API runs its own event loop, so it starts
    after (and stops before) the stack fixtures, which use asyncio themselves."""
    with sync_playwright() as playwright, chromium(playwright) as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(stack_ready.gateway_url + "/")
        yield page
        assert errors == [], f"JavaScript errors on the page: {errors}"


def register(page: Page, name: str = "Ada") -> str:
    email = f"page-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(page.url.split("#")[0] + "#/register")
    page.fill("#register [name=name]", name)
    page.fill("#register [name=email]", email)
    page.fill("#register [name=password]", "password-1")
    page.click("#register button")
    expect(page.locator("#messages")).to_contain_text(f"Welcome, {name}")
    expect(page.locator("#nav")).to_contain_text("Log out")
    return email


def add_first_match(page: Page, query: str) -> str:
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
    page.select_option("#checkout [name=card]", card)
    page.click("#checkout button[type=submit]")


def shown_trace_id(page: Page) -> str:
    trace_id = page.locator("#trace-id").inner_text()
    assert TRACE_ID.match(trace_id), trace_id
    return trace_id


def test_register_search_cart_declined_then_paid_and_the_order_in_the_history(
    page: Page, stack_ready: StackDescriptor
) -> None:
    register(page)
    name = add_first_match(page, "teapot")
    page.click("#nav-cart")
    expect(page.locator("#cart")).to_contain_text(name)

    check_out(page, DECLINED)
    expect(page.locator("#messages .message.error")).to_contain_text("declined (card_declined)")
    expect(page.locator("#cart")).to_contain_text(name)  # the cart survives a declined card

    check_out(page, GOOD)
    expect(page.locator("#messages .message.ok")).to_contain_text("Thank you! Order")
    order_title = page.locator("main h1").inner_text()
    order_prefix = order_title.split()[1]
    expect(page.locator("#order-items")).to_contain_text(name)
    checkout_trace = shown_trace_id(page)

    page.click("text=Orders")
    row = page.locator(f"#orders tr:has-text('{order_prefix}')")
    expect(row.locator("[data-status]")).to_have_text(re.compile("paid|completed"))
    expect(page.locator("#orders [data-status=failed]")).to_have_count(1)  # the declined attempt

    # the trace id the page showed for the checkout is the trace the shop recorded, end to end
    state = Path(stack_ready.state_dir)
    traces_dir = Path(stack_ready.traces_dir) if stack_ready.traces_dir else state / "traces"
    spans = spans_of_trace(traces_dir, checkout_trace, {"gateway", "orders", "payment", "catalog"})
    assert any(s["name"] == "POST /api/checkout" and s["service"] == "gateway" for s in spans)


def test_search_and_category_filter_and_the_product_page_with_recommendations(page: Page) -> None:
    page.select_option("#search [name=category]", "books")
    expect(page.locator("h1")).to_have_text("Products")
    expect(page.locator("#products .card").first).to_contain_text("books")
    categories = page.locator("#products .card .muted").all_inner_texts()
    assert categories and all(text.startswith("books") for text in categories), categories

    page.locator("#products .card a.name").first.click()
    expect(page.locator("#product-name")).not_to_be_empty()
    expect(page.locator("#recommendations .card").first).to_be_visible()
    trace = shown_trace_id(page)
    assert trace  # following the link started an action of its own

    page.goto(page.url.split("#")[0] + "#/product/999999")
    expect(page.locator("#messages .message.error")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Back to the products")


def test_cart_quantities_and_out_of_stock_is_a_message(page: Page, stack_ready: StackDescriptor) -> None:
    register(page, "Bo")
    name = add_first_match(page, "almanac")
    page.click("#nav-cart")
    line = page.locator("#cart tbody tr").first
    line.locator("input[type=number]").fill("3")
    line.locator("input[type=number]").dispatch_event("change")
    expect(page.locator("#nav-cart")).to_have_text("Cart (3)")
    product_id = int(line.get_attribute("data-product-id") or "0")
    total = page.locator("#cart-total").inner_text()

    catalog = next(r for r in stack_ready.replicas if r.service == "catalog")
    before = httpx.get(f"{catalog.url}/products/{product_id}", timeout=5).json()["stock"]
    assert httpx.put(f"{catalog.url}/products/{product_id}/stock", json={"stock": 1}, timeout=5).is_success
    try:
        check_out(page, GOOD)
        expect(page.locator("#messages .message.error")).to_contain_text("not enough stock")
        expect(page.locator("#cart")).to_contain_text(name)
        assert page.locator("#cart-total").inner_text() == total
    finally:
        httpx.put(f"{catalog.url}/products/{product_id}/stock", json={"stock": before}, timeout=5)

    page.locator("#cart tbody tr").first.locator("button").click()  # Remove
    expect(page.locator("#cart-empty")).to_be_visible()


def test_an_expired_session_sends_the_shopper_to_log_in_with_a_message(page: Page) -> None:
    email = register(page, "Cy")
    # a token the gateway cannot verify stands for an expired one: both answer 401
    page.evaluate("localStorage.setItem('shop.token', 'not.a.valid-token')")
    page.goto(page.url.split("#")[0] + "#/orders")
    expect(page.locator("#messages .message.error")).to_contain_text("session has expired")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#nav")).to_contain_text("Log in")

    page.fill("#login [name=email]", email)
    page.fill("#login [name=password]", "wrong-password")
    page.click("#login button")
    expect(page.locator("#messages .message.error")).to_contain_text("wrong password")
    page.fill("#login [name=password]", "password-1")
    page.click("#login button")
    expect(page.locator("#messages .message.ok")).to_contain_text("Welcome back, Cy")
