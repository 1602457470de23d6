"""The admin console and the order lifecycle in real Chromium against the session stack: the admin marks a
shopper's order shipped and the shopper sees "shipped"; the shopper cancels another order and sees the
refund; a shopper's token on /admin sees "admins only"; the admin creates and edits a product, and the
analytics tab shows orders per minute, top products and the SLO status. The first admin's password is the
one users generated into the stack's state folder (admin-password, 0600). Every change of those orders reaches
the shopper as one e-mail in the local SMTP server's mailbox, exactly once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from storefront.browser import browsers, buy, go, order_emails, register

from sample_shop.topology import StackDescriptor

pytestmark = pytest.mark.stack
ADMIN_EMAIL = "admin@shop.local"


@pytest.fixture
def open_page(stack_ready: StackDescriptor) -> Iterator[Callable[[str], Page]]:
    with browsers(stack_ready.gateway_url) as open_page:
        yield open_page


@pytest.fixture
def admin(open_page: Callable[[str], Page], stack_ready: StackDescriptor) -> Page:
    """The admin console, logged in as the first admin."""
    password = (Path(stack_ready.state_dir) / "admin-password").read_text().strip()
    page = open_page("/admin")
    page.fill("#login [name=email]", ADMIN_EMAIL)
    page.fill("#login [name=password]", password)
    page.click("#login button")
    expect(page.locator("#order-filter")).to_be_visible()
    return page


def order_row(admin: Page, order_id: str):  # type: ignore[no-untyped-def]
    return admin.locator(f"#admin-orders tr[data-order-id='{order_id}']")


def test_the_admin_ships_an_order_and_the_shopper_sees_shipped(
    open_page: Callable[[str], Page], admin: Page, stack_ready: StackDescriptor
) -> None:
    """... and the shopper gets one e-mail per change of the order: paid, shipped, delivered."""
    shopper = open_page("/")
    register(shopper, "Dee")
    order_id = buy(shopper, "moka")
    expect(shopper.locator("main h1 [data-status]")).to_have_text("paid")

    admin.click("#tab-orders")
    row = order_row(admin, order_id)
    expect(row.locator("[data-status]")).to_have_text("paid")
    row.locator("button.advance").click()
    expect(admin.locator("#messages .message.ok")).to_contain_text("is shipped")
    expect(order_row(admin, order_id).locator("[data-status]")).to_have_text("shipped")
    order_row(admin, order_id).locator("button.details").click()
    details = admin.locator("#admin-orders tr.order-details")
    expect(details).to_contain_text(order_id)
    expect(details.locator("ul.history li").last).to_contain_text(re.compile(r"paid → shipped \(admin:\d+\)"))

    shopper.reload()
    expect(shopper.locator("main h1 [data-status]")).to_have_text("shipped")
    expect(shopper.locator("#cancel-order")).to_have_count(0)  # a shipped order cannot be cancelled
    expect(shopper.locator("#order-history")).to_contain_text("paid → shipped")
    go(shopper, "#/orders")
    expect(shopper.locator(f"#orders tr[data-order-id='{order_id}'] [data-status]")).to_have_text("shipped")

    # the filter finds it among the shipped orders; delivered is the next and last step
    admin.select_option("#order-filter [name=status]", "shipped")
    admin.click("#order-filter button")
    expect(order_row(admin, order_id)).to_be_visible()
    expect(admin.locator("#admin-orders [data-status]:not([data-status=shipped])")).to_have_count(0)
    order_row(admin, order_id).locator("button.advance").click()
    expect(admin.locator("#messages .message.ok")).to_contain_text("is delivered")
    order_emails(
        stack_ready.state_dir, order_id, Counter({"order.paid": 1, "order.shipped": 1, "order.delivered": 1})
    )


def test_the_shopper_cancels_an_order_and_sees_the_refund(
    open_page: Callable[[str], Page], stack_ready: StackDescriptor
) -> None:
    """... and gets the paid and the cancelled e-mail of that order once each, and the other's paid one."""
    shopper = open_page("/")
    register(shopper, "Eve")
    kept = buy(shopper, "sencha")
    order_id = buy(shopper, "rooibos")
    total = shopper.locator("main p.price").inner_text().split(" · ")[0].removeprefix("Total: ")

    shopper.click("#cancel-order")
    expect(shopper.locator("#messages .message.ok")).to_contain_text("cancelled; the payment is refunded")
    expect(shopper.locator("main h1 [data-status]")).to_have_text("cancelled")
    expect(shopper.locator("#refund")).to_contain_text(f"Refunded: {total}")
    expect(shopper.locator("#cancel-order")).to_have_count(0)
    expect(shopper.locator("#order-history")).to_contain_text("paid → cancelled")

    go(shopper, "#/orders")
    expect(shopper.locator(f"#orders tr[data-order-id='{order_id}'] [data-status]")).to_have_text("cancelled")
    expect(shopper.locator("#orders [data-status=paid]")).to_have_count(1)  # the other order stands
    order_emails(stack_ready.state_dir, order_id, Counter({"order.paid": 1, "order.cancelled": 1}))
    order_emails(stack_ready.state_dir, kept, Counter({"order.paid": 1}))


def test_a_shopper_on_the_admin_console_sees_admins_only(
    open_page: Callable[[str], Page], stack_ready: StackDescriptor
) -> None:
    shopper = open_page("/")
    register(shopper, "Fay")
    token = shopper.evaluate("localStorage.getItem('shop.token')")
    answer = httpx.get(
        stack_ready.gateway_url + "/api/admin/orders",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["error"] == "admin_only"

    shopper.goto(stack_ready.gateway_url + "/admin")  # same browser, same session
    expect(shopper.locator("#admins-only")).to_contain_text("Admins only")
    expect(shopper.locator("#admin-orders")).to_have_count(0)


def test_the_admin_edits_products_and_reads_the_analytics(admin: Page, stack_ready: StackDescriptor) -> None:
    admin.click("#tab-products")
    form = admin.locator("#create-product")
    form.locator("[name=name]").fill("Console Test Mug")
    form.locator("[name=category]").fill("coffee")
    form.locator("[name=price]").fill("7.50")
    form.locator("[name=stock]").fill("12")
    form.locator("button").click()
    expect(admin.locator("#messages .message.ok")).to_contain_text("Created product")
    product_id = int(admin.locator("#messages").inner_text().split("Created product ")[1].split(":")[0])

    row = admin.locator(f"#admin-products tr[data-product-id='{product_id}']")
    row.locator(f"[aria-label='price of {product_id}']").fill("8.25")
    row.locator(f"[aria-label='stock of {product_id}']").fill("40")
    row.locator("button.save").click()
    expect(admin.locator("#messages .message.ok")).to_contain_text("8.25 EUR, 40 in stock")
    public = httpx.get(f"{stack_ready.gateway_url}/api/products/{product_id}", timeout=10).json()["product"]
    assert (public["name"], public["price_cents"], public["stock"]) == ("Console Test Mug", 825, 40)

    row.locator(f"[aria-label='price of {product_id}']").fill("free")
    row.locator("button.save").click()
    expect(admin.locator("#messages .message.error")).to_contain_text('"free" is not a price')

    admin.click("#tab-analytics")
    expect(admin.locator("#orders-chart")).to_be_visible()
    expect(admin.locator("#per-minute tbody tr")).to_have_count(5)
    expect(admin.locator("#slo-status tbody tr").first).to_be_visible()
    states = admin.locator("#slo-status td.slo").all_inner_texts()
    assert states and set(states) <= {"met", "breached", "burning", "no data", "unknown"}, states
