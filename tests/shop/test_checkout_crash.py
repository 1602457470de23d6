"""orders SIGKILLed in the middle of a checkout: a retry with the same Idempotency-Key after the restart
resumes the pending order - exactly one order, stock taken once, one charge."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid

import httpx
import pytest

from shop.helpers import Customer, inject, stock_of
from shop.processes import ShopProcesses

pytestmark = pytest.mark.usefixtures("clean_faults")


def order_rows(shop: ShopProcesses, key: str) -> list[tuple[str, str, int | None]]:
    with sqlite3.connect(shop.state_dir / "data" / "orders.db", timeout=10) as db:
        return db.execute(
            "SELECT id, status, total_cents FROM orders WHERE idempotency_key = ?", (key,)
        ).fetchall()


def test_killed_orders_mid_checkout_then_retry_yields_exactly_one_order(
    shop: ShopProcesses, customer: Customer
) -> None:
    product_id, quantity = 13, 2
    assert customer.add(product_id, quantity).status_code == 200
    stock_before = stock_of(shop, product_id)
    key = f"crash-{uuid.uuid4().hex}"
    # payment answers slowly, so orders is caught between reserving stock and completing the order
    inject(shop, "payment", "latency", ms=800)
    first: dict[str, httpx.Response | Exception] = {}

    def checkout() -> None:
        try:
            first["response"] = customer.checkout(key)
        except httpx.HTTPError as exc:
            first["response"] = exc

    thread = threading.Thread(target=checkout)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the order is pending with its stock reserved
        rows = order_rows(shop, key)
        if rows and rows[0][1] == "pending" and rows[0][2] is not None:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the checkout never reached the reserved state: {order_rows(shop, key)}")
    shop.kill("orders", 0, signal.SIGKILL)
    thread.join(30)
    answer = first["response"]
    assert isinstance(answer, httpx.Response) and answer.status_code in (502, 503), answer
    [(order_id, status, _)] = order_rows(shop, key)
    assert status == "pending"
    assert stock_of(shop, product_id) == stock_before - quantity  # reserved, not yet released

    shop.start("orders", 0)
    shop.wait_ready("orders", 0)
    retry = customer.checkout(key)
    assert retry.status_code in (200, 201), retry.text
    assert retry.json()["id"] == order_id and retry.json()["status"] == "paid"
    assert order_rows(shop, key) == [(order_id, "paid", retry.json()["total_cents"])]
    assert stock_of(shop, product_id) == stock_before - quantity  # taken exactly once
    assert customer.http.get("/api/orders").json()["total"] == 1
    again = customer.checkout(key)
    assert again.status_code == 200 and again.json()["id"] == order_id
    logs = [line for line in shop.logs("orders") if line.get("event") == "leases_freed"]
    assert logs, "the restarted replica should free the lease of its previous life"
