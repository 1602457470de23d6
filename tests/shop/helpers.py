"""Helpers of the shop's live tests: the admin API, fault injection, a logged-in customer, stock."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from shop.processes import ADMIN_TOKEN, ShopProcesses

CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}


def admin(
    shop: ShopProcesses, service: str, method: str, path: str, replica: int = 0, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.request(method, shop.admin_url(service, replica) + path, headers=headers, timeout=5, **kw)


def inject(
    shop: ShopProcesses, service: str, kind: str, ttl_s: float = 30, replica: int | None = None, **params: Any
) -> list[dict[str, Any]]:
    """POST a fault to every running replica of `service` (or one); returns the created faults."""
    replicas = [replica] if replica is not None else [r for (s, r) in shop.running if s == service]
    created = []
    for r in replicas:
        response = admin(
            shop, service, "POST", "/faults", r, json={"kind": kind, "params": params, "ttl_s": ttl_s}
        )
        assert response.status_code == 201, response.text
        created.append(response.json())
    return created


class Customer:
    """A registered, logged-in user of the gateway's public API."""

    def __init__(self, shop: ShopProcesses) -> None:
        self.http = httpx.Client(base_url=shop.url("gateway"), timeout=15)
        self.email = f"u-{uuid.uuid4().hex[:12]}@example.com"
        registered = self.http.post(
            "/api/auth/register", json={"email": self.email, "password": "password-1", "name": "Test User"}
        )
        assert registered.status_code == 201, registered.text
        login = self.http.post("/api/auth/login", json={"email": self.email, "password": "password-1"})
        assert login.status_code == 200, login.text
        self.token = login.json()["access_token"]
        self.user_id = login.json()["user"]["id"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def add(self, product_id: int, quantity: int = 1) -> httpx.Response:
        return self.http.post("/api/cart/items", json={"product_id": product_id, "quantity": quantity})

    def checkout(
        self,
        key: str | None = None,
        card: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.http.post(
            "/api/checkout",
            json={"card": card or CARD},
            headers={"Idempotency-Key": key or uuid.uuid4().hex, **(headers or {})},
        )

    def close(self) -> None:
        self.http.close()


def set_stock(shop: ShopProcesses, product_id: int, stock: int) -> None:
    response = httpx.put(
        f"{shop.url('catalog')}/products/{product_id}/stock",
        json={"stock": stock},
        headers={SERVICE_TOKEN_HEADER: ADMIN_TOKEN},  # an internal route: the stack's service token
        timeout=5,
    )
    assert response.status_code == 200, response.text


def stock_of(shop: ShopProcesses, product_id: int) -> int:
    return httpx.get(f"{shop.url('catalog')}/products/{product_id}", timeout=5).json()["stock"]


def spans_of_trace(
    traces_dir: Path, trace_id: str, want: set[str], timeout_s: float = 8.0
) -> list[dict[str, Any]]:
    """Every span of `trace_id` in the OTLP-JSON trace files, tagged with its service.

    Waits for the batch exporters (0.5 s schedule) until every service in `want` has a span and the
    trace is whole: at most one parent id (the caller's, outside the shop) is missing. A service's
    spans can land in two batches, so "orders has a span" alone does not mean orders' client span to
    payment has been written yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for path in traces_dir.glob("*.jsonl"):
            for line in path.read_text().splitlines():
                for resource_spans in json.loads(line)["resourceSpans"]:
                    attrs = {
                        a["key"]: a["value"].get("stringValue")
                        for a in resource_spans["resource"]["attributes"]
                    }
                    for scope in resource_spans["scopeSpans"]:
                        for span in scope["spans"]:
                            if span["traceId"] == trace_id:
                                found.append({**span, "service": attrs["service.name"]})
        span_ids = {s["spanId"] for s in found}
        missing_parents = {s.get("parentSpanId") for s in found} - span_ids - {None, ""}
        whole = len(missing_parents) <= 1
        if (want <= {s["service"] for s in found} and whole) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def services_logging(logs_dir: Path, trace_id: str) -> set[str]:
    """Services whose JSON log lines (any replica) carry `trace_id`."""
    found = set()
    for path in logs_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if trace_id in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("trace_id") == trace_id and "service" in record:
                    found.add(record["service"])
    return found
