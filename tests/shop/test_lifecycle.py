"""Profile, password, the order lifecycle, cancellation (refund and stock release) and the admin API, end to
end through the gateway against the session's real shop processes and SQLite files (issue 18 items 2, 3)."""

from __future__ import annotations

import sqlite3
import stat
import uuid
from typing import Any

import httpx
import pytest

from sample_shop.orders.lifecycle import TransitionRefused, check_managed
from shop.helpers import Customer, stock_of
from shop.processes import ShopProcesses

pytestmark = pytest.mark.usefixtures("clean_faults")
ADMIN_EMAIL = "admin@shop.local"


def admin_client(shop: ShopProcesses) -> httpx.Client:
    password_file = shop.state_dir / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    http = httpx.Client(base_url=shop.url("gateway"), timeout=15)
    login = http.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": password_file.read_text().strip()}
    )
    assert login.status_code == 200, login.text
    assert login.json()["user"]["role"] == "admin"
    http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return http


def paid_order(customer: Customer, product_id: int = 5, quantity: int = 2) -> dict[str, Any]:
    assert customer.add(product_id, quantity).status_code == 200
    response = customer.checkout()
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    assert order["status"] == "paid"
    return order


def test_transition_rules_are_pure_and_name_the_way_forward() -> None:
    check_managed("o1", "paid", "shipped")
    check_managed("o1", "shipped", "delivered")
    check_managed("o1", "paid", "cancelled")
    with pytest.raises(TransitionRefused) as refused:
        check_managed("o1", "shipped", "cancelled")
    assert refused.value.code == "order_not_cancellable"
    with pytest.raises(TransitionRefused) as refused:
        check_managed("o1", "paid", "delivered")
    assert refused.value.code == "invalid_transition" and "shipped" in refused.value.message
    with pytest.raises(TransitionRefused):
        check_managed("o1", "failed", "shipped")


def test_profile_edit_and_password_change(shop: ShopProcesses, customer: Customer) -> None:
    http = customer.http
    edited = http.patch("/api/me", json={"name": "  Ada King "})
    assert edited.status_code == 200 and edited.json()["name"] == "Ada King"
    assert http.get("/api/me").json()["name"] == "Ada King"
    assert http.patch("/api/me", json={"name": "  "}).status_code == 422

    wrong = http.post("/api/me/password", json={"old_password": "nope-nope", "new_password": "better-pass-2"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong_password"
    weak = http.post("/api/me/password", json={"old_password": "password-1", "new_password": "short"})
    assert weak.status_code == 422 and weak.json()["error"] == "weak_password"
    changed = http.post(
        "/api/me/password", json={"old_password": "password-1", "new_password": "better-pass-2"}
    )
    assert changed.status_code == 204, changed.text
    gateway = shop.url("gateway")
    old = httpx.post(f"{gateway}/api/auth/login", json={"email": customer.email, "password": "password-1"})
    assert old.status_code == 401
    new = httpx.post(f"{gateway}/api/auth/login", json={"email": customer.email, "password": "better-pass-2"})
    assert new.status_code == 200 and new.json()["user"]["role"] == "shopper"


def test_cancel_refunds_releases_stock_and_is_idempotent(shop: ShopProcesses, customer: Customer) -> None:
    before = stock_of(shop, 5)
    order = paid_order(customer, 5, 2)
    assert stock_of(shop, 5) == before - 2
    cancelled = customer.http.post(f"/api/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["refund"]["refund_id"].startswith("re_")
    assert body["refund"]["amount_cents"] == order["total_cents"]
    assert stock_of(shop, 5) == before  # released once
    again = customer.http.post(f"/api/orders/{order['id']}/cancel")
    assert again.status_code == 200 and again.json()["refund"] == body["refund"]
    assert stock_of(shop, 5) == before  # not twice
    detail = customer.http.get(f"/api/orders/{order['id']}").json()
    assert [(h["from"], h["to"]) for h in detail["history"]] == [
        (None, "pending"),
        ("pending", "paid"),
        ("paid", "cancelled"),
    ]
    assert detail["history"][-1]["actor"] == f"shopper:{customer.user_id}"
    other = Customer(shop)
    try:  # another shopper's order does not exist for them
        assert other.http.post(f"/api/orders/{order['id']}/cancel").status_code == 404
    finally:
        other.close()


def test_admin_ships_delivers_and_shipped_orders_cannot_be_cancelled(
    shop: ShopProcesses, customer: Customer
) -> None:
    admin = admin_client(shop)
    order = paid_order(customer, 7, 1)
    listed = admin.get("/api/admin/orders", params={"status": "paid", "user": customer.user_id})
    assert listed.status_code == 200 and [o["id"] for o in listed.json()["items"]] == [order["id"]]
    bad = admin.post(f"/api/admin/orders/{order['id']}/status", json={"status": "delivered"})
    assert bad.status_code == 409 and bad.json()["error"] == "invalid_transition"
    shipped = admin.post(f"/api/admin/orders/{order['id']}/status", json={"status": "shipped"})
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    assert customer.http.get(f"/api/orders/{order['id']}").json()["status"] == "shipped"
    refused = customer.http.post(f"/api/orders/{order['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"] == "order_not_cancellable"
    assert admin.post(f"/api/admin/orders/{order['id']}/cancel").status_code == 409
    delivered = admin.post(f"/api/admin/orders/{order['id']}/status", json={"status": "delivered"})
    assert delivered.json()["status"] == "delivered"
    assert delivered.json()["history"][-1]["actor"].startswith("admin:")
    assert admin.post(f"/api/admin/orders/{order['id']}/status", json={"status": "paid"}).status_code == 422
    assert admin.get("/api/admin/orders", params={"status": "lost"}).status_code == 422
    with sqlite3.connect(shop.state_dir / "data" / "orders.db", timeout=10) as db:
        recorded = db.execute(
            "SELECT from_status, to_status FROM order_events WHERE order_id = ? ORDER BY id", (order["id"],)
        ).fetchall()
    assert recorded == [(None, "pending"), ("pending", "paid"), ("paid", "shipped"), ("shipped", "delivered")]

    second = paid_order(customer, 8, 1)
    by_admin = admin.post(f"/api/admin/orders/{second['id']}/cancel")
    assert by_admin.status_code == 200 and by_admin.json()["refund"] is not None
    admin.close()


def test_admin_products_and_analytics(shop: ShopProcesses, customer: Customer) -> None:
    admin = admin_client(shop)
    name = f"Test Kettle {uuid.uuid4().hex[:6]}"
    created = admin.post(
        "/api/admin/products",
        json={"name": name, "category": "kitchen", "price_cents": 2599, "stock": 3, "description": "steel"},
    )
    assert created.status_code == 201, created.text
    product = created.json()
    edited = admin.patch(f"/api/admin/products/{product['id']}", json={"price_cents": 1999, "stock": 9})
    assert edited.status_code == 200 and (edited.json()["price_cents"], edited.json()["stock"]) == (1999, 9)
    assert admin.patch(f"/api/admin/products/{product['id']}", json={}).status_code == 422
    assert admin.patch("/api/admin/products/999999", json={"stock": 1}).status_code == 404
    listing = admin.get("/api/admin/products", params={"q": name}).json()
    assert [p["id"] for p in listing["items"]] == [product["id"]]

    order = paid_order(customer, product["id"], 2)
    analytics = admin.get("/api/admin/analytics", params={"minutes": 5})
    assert analytics.status_code == 200, analytics.text
    data = analytics.json()
    assert len(data["orders_per_minute"]) == 5
    assert data["orders_per_minute"][-1]["orders"] >= 1 and data["orders_per_minute"][-1]["revenue"] >= 3998
    assert any(p["product_id"] == product["id"] and p["quantity"] == 2 for p in data["top_products"])
    # these processes run without Prometheus: the console is told so instead of an empty table
    assert [s["state"] for s in data["slo_status"]] == ["unknown"]
    assert order["total_cents"] == 3998
    admin.close()


def test_shopper_tokens_get_403_on_every_admin_route(shop: ShopProcesses, customer: Customer) -> None:
    http = customer.http
    for method, path, body in (
        ("GET", "/api/admin/products", None),
        ("POST", "/api/admin/products", {"name": "x", "category": "toys", "price_cents": 1, "stock": 1}),
        ("PATCH", "/api/admin/products/1", {"stock": 1}),
        ("GET", "/api/admin/orders", None),
        ("POST", "/api/admin/orders/abc/status", {"status": "shipped"}),
        ("POST", "/api/admin/orders/abc/cancel", None),
        ("GET", "/api/admin/analytics", None),
    ):
        answer = http.request(method, path, json=body)
        assert answer.status_code == 403 and answer.json()["error"] == "admin_only", (
            method,
            path,
            answer.text,
        )
    # the services check the role too, not only the gateway
    direct = httpx.get(
        f"{shop.url('orders')}/admin/orders", headers={"Authorization": f"Bearer {customer.token}"}
    )
    assert direct.status_code == 403
