"""The storefront in real Chromium against the session stack (real gateway and services): register, search,
add to the cart, a declined card then a good one, the order in the history and its e-mail in the local
SMTP server's mailbox once; the click's trace id on the page is the trace the shop recorded; errors a
shopper causes (declined card, out of stock, an expired session) are messages on the page, never a blank
page or a JSON body."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from shop.helpers import spans_of_trace
from storefront.browser import (
    DECLINED_CARD,
    GOOD_CARD,
    ORDER_URL,
    PASSWORD,
    add_first_match,
    browsers,
    check_out,
    go,
    order_emails,
    register,
    shown_trace_id,
)

from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack


@pytest.fixture
def open_page(stack_ready: StackDescriptor) -> Iterator[Callable[[str], Page]]:
    with browsers(stack_ready.gateway_url) as open_page:
        yield open_page


@pytest.fixture
def page(open_page: Callable[[str], Page]) -> Page:
    return open_page("/")


def test_register_search_cart_declined_then_paid_and_the_order_in_the_history(
    page: Page, stack_ready: StackDescriptor
) -> None:
    register(page)
    name = add_first_match(page, "teapot")
    page.click("#nav-cart")
    expect(page.locator("#cart")).to_contain_text(name)

    check_out(page, DECLINED_CARD)
    expect(page.locator("#messages .message.error")).to_contain_text("declined (card_declined)")
    expect(page.locator("#cart")).to_contain_text(name)  # the cart survives a declined card

    check_out(page, GOOD_CARD)
    expect(page.locator("#messages .message.ok")).to_contain_text("Thank you! Order")
    order_prefix = page.locator("main h1").inner_text().split()[1]
    order_url = ORDER_URL.search(page.url)
    assert order_url, page.url
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
    # the paid order's e-mail, once (the declined attempt is a failed order: no event, no e-mail)
    order_emails(state, order_url.group(1), Counter({"order.paid": 1}))


def test_search_and_category_filter_and_the_product_page_with_recommendations(page: Page) -> None:
    expect(page.locator("#products .card")).to_have_count(24)  # one page of the catalog
    page.click("#more-products")
    expect(page.locator("#products .card")).not_to_have_count(24)
    assert 24 < page.locator("#products .card").count() <= 48

    page.select_option("#search [name=category]", "books")
    expect(page.locator("h1")).to_have_text("Products")
    expect(page.locator("#products .card").first).to_contain_text("books")
    categories = page.locator("#products .card .muted").all_inner_texts()
    assert categories and all(text.startswith("books") for text in categories), categories

    before = shown_trace_id(page)
    page.locator("#products .card a.name").first.click()
    expect(page.locator("#product-name")).not_to_be_empty()
    expect(page.locator("#recommendations .card").first).to_be_visible()
    assert shown_trace_id(page) != before  # following the link is an action of its own

    go(page, "#/product/999999")
    expect(page.locator("#messages .message.error")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Back to the products")


def test_cart_quantities_and_out_of_stock_is_a_message(page: Page, stack_ready: StackDescriptor) -> None:
    register(page, "Bo")
    name = add_first_match(page, "almanac")
    page.click("#nav-cart")
    line = page.locator("#cart tbody tr").first
    line.locator("input[type=number]").fill("3")
    # a real change event (leaving the field), as a person makes it: a synthetic one would leave the
    # browser to fire its own on the next click, and set the quantity a second time mid-test
    line.locator("input[type=number]").blur()
    expect(page.locator("#nav-cart")).to_have_text("Cart (3)")
    product_id = int(line.get_attribute("data-product-id") or "0")
    total = page.locator("#cart-total").inner_text()
    suggestion = page.locator("#cart-recommendations .card").first  # products related to the cart
    expect(suggestion).to_be_visible()
    suggested = suggestion.locator("a.name").inner_text()
    suggestion.locator("button.add").click()
    expect(page.locator("#cart")).to_contain_text(suggested)
    expect(page.locator("#nav-cart")).to_have_text("Cart (4)")
    page.locator(f"#cart tr:has-text('{suggested}') button").click()  # Remove it again
    expect(page.locator("#nav-cart")).to_have_text("Cart (3)")
    line = page.locator(f"#cart tr[data-product-id='{product_id}']")

    catalog = next(r for r in stack_ready.replicas if r.service == "catalog")
    before = httpx.get(f"{catalog.url}/products/{product_id}", timeout=5).json()["stock"]
    service = {SERVICE_TOKEN_HEADER: stack_ready.token()}  # an internal route: the stack's service token
    assert httpx.put(
        f"{catalog.url}/products/{product_id}/stock", json={"stock": 1}, headers=service, timeout=5
    ).is_success
    try:
        check_out(page, GOOD_CARD)
        expect(page.locator("#messages .message.error")).to_contain_text("not enough stock")
        expect(page.locator("#cart")).to_contain_text(name)
        assert page.locator("#cart-total").inner_text() == total
    finally:
        httpx.put(
            f"{catalog.url}/products/{product_id}/stock", json={"stock": before}, headers=service, timeout=5
        )

    page.locator("#cart tbody tr").first.locator("button").click()  # Remove
    expect(page.locator("#cart-empty")).to_be_visible()


def test_an_expired_session_sends_the_shopper_to_log_in_with_a_message(page: Page) -> None:
    email = register(page, "Cy")
    # a token the gateway cannot verify stands for an expired one: both answer 401
    page.evaluate("localStorage.setItem('shop.token', 'not.a.valid-token')")
    go(page, "#/orders")
    expect(page.locator("#messages .message.error")).to_contain_text("session has expired")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#nav")).to_contain_text("Log in")

    page.fill("#login [name=email]", email)
    page.fill("#login [name=password]", "wrong-password")
    page.click("#login button")
    expect(page.locator("#messages .message.error")).to_contain_text("wrong password")
    page.fill("#login [name=password]", PASSWORD)
    page.click("#login button")
    expect(page.locator("#messages .message.ok")).to_contain_text("Welcome back, Cy")


def test_the_profile_changes_the_name_and_the_password(page: Page) -> None:
    email = register(page, "Gus")
    page.click("#nav a.who")
    page.fill("#profile [name=name]", "Gus Grissom")
    page.click("#profile button")
    expect(page.locator("#messages .message.ok")).to_contain_text("Your name is now Gus Grissom")
    expect(page.locator("#nav a.who")).to_have_text("Gus Grissom")

    page.fill("#password [name=old_password]", "not-my-password")
    page.fill("#password [name=new_password]", "a-new-password-2")
    page.click("#password button")
    expect(page.locator("#messages .message.error")).to_contain_text("current password is not right")
    expect(page.locator("#nav")).to_contain_text("Log out")  # a wrong old password is not an expired session

    page.fill("#password [name=old_password]", PASSWORD)
    page.fill("#password [name=new_password]", "a-new-password-2")
    page.click("#password button")
    expect(page.locator("#messages .message.ok")).to_contain_text("Your password is changed")

    page.click("#logout")
    go(page, "#/login")
    page.fill("#login [name=email]", email)
    page.fill("#login [name=password]", "a-new-password-2")
    page.click("#login button")
    expect(page.locator("#messages .message.ok")).to_contain_text("Welcome back, Gus Grissom")


def test_a_payment_outage_is_a_message_and_paying_again_makes_one_order(
    page: Page, control: httpx.Client
) -> None:
    """A real fault (the payment service answers 503) through the fault controller: the page says the
    provider is unavailable; after the outage, "Pay" again reuses the checkout's Idempotency-Key, so the
    shopper ends with one paid order, not a failed one and a paid one."""
    register(page, "Hal")
    add_first_match(page, "rooibos")
    fault = control.post("/faults/payment", json={"kind": "error", "params": {"status": 503}, "ttl_s": 60})
    assert fault.status_code == 201, fault.text
    try:
        check_out(page, GOOD_CARD)
        expect(page.locator("#messages .message.error")).to_contain_text("payment provider is unavailable")
        expect(page.locator("#cart")).to_be_visible()
    finally:
        assert control.delete("/faults/payment").is_success
    page.click("#checkout button[type=submit]")
    expect(page.locator("#messages .message.ok")).to_contain_text("Thank you! Order")
    go(page, "#/orders")
    expect(page.locator("#orders tbody tr")).to_have_count(1)
    expect(page.locator("#orders [data-status]")).to_have_text("paid")
