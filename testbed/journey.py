"""One shopper's journey through the gateway's public API - register, log in, add to cart, check out - for
the checks that need exactly one known checkout (the trace-backend test, `make traces-ui`, the image
test). The load generator (load/) is for traffic; this is for one request you can then look up."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

TEST_CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}


class JourneyError(RuntimeError):
    """A step of the journey did not answer as a healthy shop does (the message names the step)."""


@dataclass(frozen=True)
class Checkout:
    order: dict[str, Any]
    trace_id: str  # the W3C trace id the checkout request carried (sampled)
    caller_span_id: str  # the parent span id in that traceparent: the shop's root span points at it


def _expect(response: httpx.Response, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        raise JourneyError(
            f"{step}: expected HTTP {status}, got {response.status_code}: {response.text[:300]}"
        )
    body = response.json()
    return body if isinstance(body, dict) else {"items": body}


def one_checkout(gateway_url: str, timeout_s: float = 20.0) -> Checkout:
    """Register a fresh user, log in, put the first product in the cart and check out; the checkout carries
    a sampled traceparent of our own, so its trace can be found by id wherever the spans went."""
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    email = f"journey-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=gateway_url, timeout=timeout_s) as http:
        _expect(
            http.post("/api/auth/register", json={"email": email, "password": "password-1", "name": "Ada"}),
            201,
            "register",
        )
        login = _expect(
            http.post("/api/auth/login", json={"email": email, "password": "password-1"}), 200, "login"
        )
        http.headers["Authorization"] = f"Bearer {login['access_token']}"
        products = _expect(http.get("/api/products", params={"limit": 1}), 200, "list products")
        if not products.get("items"):
            raise JourneyError("list products: the catalog is empty")
        product_id = products["items"][0]["id"]
        _expect(
            http.post("/api/cart/items", json={"product_id": product_id, "quantity": 1}), 200, "add to cart"
        )
        order = _expect(
            http.post(
                "/api/checkout",
                json={"card": TEST_CARD},
                headers={"Idempotency-Key": uuid.uuid4().hex, "traceparent": f"00-{trace_id}-{caller}-01"},
            ),
            201,
            "checkout",
        )
    return Checkout(order, trace_id, caller)
