"""The shop end to end through the gateway, against real processes and real SQLite: the user journey,
idempotent checkout, never overselling, input validation, trace propagation, degradation, and replicas."""

from __future__ import annotations

import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from shop.helpers import CARD, Customer, inject, services_logging, set_stock, spans_of_trace, stock_of
from shop.processes import ShopProcesses

pytestmark = pytest.mark.usefixtures("clean_faults")


def orders_db(shop: ShopProcesses) -> sqlite3.Connection:
    return sqlite3.connect(shop.state_dir / "data" / "orders.db", timeout=10)


def test_journey_register_login_browse_cart_checkout(shop: ShopProcesses, customer: Customer) -> None:
    http = customer.http
    assert http.get("/api/me").json()["email"] == customer.email
    listing = http.get("/api/products", params={"category": "tea", "limit": 5})
    assert listing.status_code == 200 and listing.json()["total"] == 10
    assert all(p["category"] == "tea" for p in listing.json()["items"])
    assert http.get("/api/products", params={"q": "moka"}).json()["total"] == 2
    page = http.get("/api/products/7").json()
    assert page["product"]["id"] == 7 and page["degraded"] is False and len(page["recommendations"]) == 4
    assert (
        http.get("/api/products/7/recommendations", params={"limit": 2}).json()["items"][0]["category"]
        == "tea"
    )
    assert "<html" in http.get("/").text

    assert customer.add(3, 2).status_code == 200
    cart = customer.add(8).json()
    assert cart["item_count"] == 3 and [i["product_id"] for i in cart["items"]] == [3, 8]
    assert http.get("/api/recommendations").json()["items"]
    assert http.delete("/api/cart/items/8").json()["item_count"] == 2
    customer.add(8)
    stock_before = stock_of(shop, 3)

    trace_id = uuid.uuid4().hex
    key = f"journey-{uuid.uuid4().hex}"
    response = customer.checkout(
        key, headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01", "baggage": "synthetic=true"}
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "paid" and order["card_last4"] == "4242"
    assert order["total_cents"] == sum(i["quantity"] * i["unit_price_cents"] for i in order["items"])
    assert stock_of(shop, 3) == stock_before - 2
    assert http.get("/api/cart").json()["items"] == []
    assert http.get(f"/api/orders/{order['id']}").json()["id"] == order["id"]
    assert http.get("/api/orders").json()["items"][0]["id"] == order["id"]

    with orders_db(shop) as db:  # persisted exactly once
        rows = db.execute("SELECT id, status FROM orders WHERE idempotency_key = ?", (key,)).fetchall()
    assert rows == [(order["id"], "paid")]

    # one trace across gateway -> orders -> cart/catalog/payment, parented hop by hop
    services = {"gateway", "orders", "payment", "catalog", "cart"}
    spans = spans_of_trace(shop.state_dir / "traces", trace_id, services)
    assert services <= {s["service"] for s in spans}
    by_id = {s["spanId"]: s for s in spans}
    for span in spans:
        if span["service"] != "gateway" or span["kind"] != 2:
            assert span["parentSpanId"] in by_id, f"orphan span {span['name']} of {span['service']}"
    server_spans = [s for s in spans if s["kind"] == 2]
    assert {s["name"] for s in server_spans} >= {
        "POST /api/checkout",
        "POST /checkout",
        "POST /charges",
        "POST /reservations",
    }
    for span in server_spans:  # the synthetic baggage crossed every hop
        attrs = {a["key"]: a["value"].get("stringValue") for a in span["attributes"]}
        assert attrs["synthetic"] == "true", span["name"]

    # the same trace id in the JSON logs of gateway, orders, payment and catalog
    want = {"gateway", "orders", "payment", "catalog"}
    deadline = time.monotonic() + 5
    while not want <= (logged := services_logging(shop.state_dir / "logs", trace_id)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert want <= logged

    metrics = httpx.get(shop.url("payment") + "/metrics").text
    assert (
        'shop_http_requests_total{method="POST",route="/charges",service="payment",status_class="2xx",'
        'synthetic="true"}' in metrics
    )
    assert 'shop_payments_total{outcome="succeeded",service="payment"}' in metrics


def test_retry_with_same_key_returns_the_same_order(shop: ShopProcesses, customer: Customer) -> None:
    customer.add(5)
    key = f"retry-{uuid.uuid4().hex}"
    first = customer.checkout(key)
    assert first.status_code == 201
    stock = stock_of(shop, 5)
    again = customer.checkout(key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert stock_of(shop, 5) == stock  # nothing reserved twice
    assert customer.http.get("/api/orders").json()["total"] == 1
    # the key is per user: another user may use the same key for their own order
    other = Customer(shop)
    try:
        other.add(5)
        assert other.checkout(key).json()["id"] != first.json()["id"]
    finally:
        other.close()


def test_declined_card_compensates_and_replays_the_failure(shop: ShopProcesses, customer: Customer) -> None:
    customer.add(6, 3)
    stock = stock_of(shop, 6)
    key = f"declined-{uuid.uuid4().hex}"
    declined = customer.checkout(key, card={**CARD, "number": "4000000000000002"})
    assert declined.status_code == 402, declined.text
    body = declined.json()
    assert body["error"] == "payment_declined" and body["reason"] == "card_declined" and body["order_id"]
    assert stock_of(shop, 6) == stock  # the reservation was released
    replay = customer.checkout(key, card={**CARD, "number": "4000000000000002"})  # the recorded failure
    assert replay.status_code == 402 and replay.json()["order_id"] == body["order_id"]
    other_body = customer.checkout(key)  # same key, a good card: another request, not a retry
    assert other_body.status_code == 422 and other_body.json()["error"] == "idempotency_key_reused"
    poor = customer.checkout(card={**CARD, "number": "4000000000009995"})
    assert poor.status_code == 402 and poor.json()["reason"] == "insufficient_funds"
    invalid = customer.checkout(card={**CARD, "number": "4242424242424241"})
    assert invalid.status_code == 422 and invalid.json()["error"] == "card_invalid"
    assert customer.checkout().status_code == 201  # the cart survived the failures
    empty = customer.checkout()
    assert empty.status_code == 409 and empty.json()["error"] == "cart_empty"


def test_concurrent_checkouts_of_the_last_item_never_oversell(shop: ShopProcesses) -> None:
    product_id, buyers = 42, 8
    customers = [Customer(shop) for _ in range(buyers)]
    try:
        for c in customers:
            assert c.add(product_id).status_code == 200
        set_stock(shop, product_id, 1)
        with ThreadPoolExecutor(buyers) as pool:
            answers = list(pool.map(lambda c: c.checkout(), customers))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] + [409] * (buyers - 1), [a.text for a in answers]
        assert {a.json()["error"] for a in answers if a.status_code == 409} == {"out_of_stock"}
        assert stock_of(shop, product_id) == 0
    finally:
        set_stock(shop, product_id, 100_000)
        for c in customers:
            c.close()


BAD_REQUESTS = [
    (
        "POST",
        "/api/auth/register",
        {"json": {"email": "not-an-email", "password": "password-1", "name": "x"}},
        422,
        "body.email",
    ),
    (
        "POST",
        "/api/auth/register",
        {"json": {"email": "a@example.com", "password": "short", "name": "x"}},
        422,
        "body.password",
    ),
    (
        "POST",
        "/api/auth/register",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "body",
    ),
    (
        "POST",
        "/api/auth/login",
        {"json": {"email": "nobody@example.com", "password": "password-1"}},
        401,
        None,
    ),
    ("GET", "/api/products", {"params": {"limit": 0}}, 422, "query.limit"),
    ("GET", "/api/products", {"params": {"offset": -1}}, 422, "query.offset"),
    ("GET", "/api/products/abc", {}, 422, "path.product_id"),
    ("GET", "/api/products/99999999999", {}, 422, "path.product_id"),
    ("GET", "/api/products/999999", {}, 404, None),
    ("GET", "/api/products/1/recommendations", {"params": {"limit": 50}}, 422, "query.limit"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "quantity": 100}}, 422, "body.quantity"),
    ("POST", "/api/cart/items", {"json": {"product_id": 1, "colour": "red"}}, 422, "body.colour"),
    ("POST", "/api/cart/items", {"json": {"product_id": 999999}}, 404, None),
    ("POST", "/api/checkout", {"json": {"card": CARD}}, 422, "header.Idempotency-Key"),
    (
        "POST",
        "/api/checkout",
        {"json": {"card": CARD}, "headers": {"Idempotency-Key": "short"}},
        422,
        "header.Idempotency-Key",
    ),
    (
        "POST",
        "/api/checkout",
        {"json": {"card": {**CARD, "expiry": "13/30"}}, "headers": {"Idempotency-Key": "valid-key-123"}},
        422,
        "body.card.expiry",
    ),
    ("GET", "/api/orders/not-a-real-order", {}, 404, None),
    ("GET", "/api/nowhere", {}, 404, None),
    ("PATCH", "/api/cart", {}, 405, None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    BAD_REQUESTS,
    ids=[f"{m} {p} {s}" for m, p, _, s, _ in BAD_REQUESTS],
)
def test_bad_input_gets_a_clear_4xx(
    customer: Customer, method: str, path: str, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    response = customer.http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["message"]
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body


def test_missing_or_bad_token_is_401(shop: ShopProcesses) -> None:
    gateway = shop.url("gateway")
    assert httpx.get(gateway + "/api/cart").status_code == 401
    bad = httpx.get(gateway + "/api/cart", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and "log in again" in bad.json()["message"]
    # a token signed with another secret is refused by the service itself, not only the gateway
    direct = httpx.get(shop.url("cart") + "/cart", headers={"Authorization": "Basic abc"})
    assert direct.status_code == 401 and direct.headers["www-authenticate"] == "Bearer"


def test_recommendations_degrade_gracefully_but_catalog_is_essential(
    shop: ShopProcesses, customer: Customer
) -> None:
    inject(shop, "recommendations", "error", status=500)
    page = customer.http.get("/api/products/9")
    assert (
        page.status_code == 200 and page.json()["degraded"] is True and page.json()["recommendations"] == []
    )
    assert page.headers["x-degraded"] == "recommendations"
    assert customer.http.get("/api/products/9/recommendations").json()["degraded"] is True
    inject(shop, "catalog", "error", status=503)
    assert customer.http.get("/api/products/9").status_code >= 500
    assert customer.http.get("/api/products").status_code >= 500


def test_one_of_two_catalog_replicas_killed_browsing_continues(
    shop: ShopProcesses, customer: Customer
) -> None:
    shop.kill("catalog", 1)
    try:
        answers = [customer.http.get(f"/api/products/{i}").status_code for i in range(1, 21)]
        assert answers == [200] * 20
        cart = customer.add(11)  # cart -> catalog balances too
        assert cart.status_code == 200
        metrics = httpx.get(shop.url("gateway") + "/metrics").text
        assert 'shop_client_requests_total{method="GET",outcome="connection_error",peer="catalog"' in metrics
    finally:
        shop.start("catalog", 1)
        shop.wait_ready("catalog", 1)
