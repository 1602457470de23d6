"""The shop's own hardening, against real shop processes and real SQLite: request bodies over the
documented limit are refused with 413 before they are read, malformed tokens get a plain "invalid token",
and the state folder and its SQLite files are private to their owner."""

from __future__ import annotations

import stat

import httpx
import pytest

from sample_shop.kit.asgi import MAX_BODY_BYTES
from shop.processes import ShopProcesses

pytestmark = pytest.mark.usefixtures("clean_faults")


@pytest.mark.parametrize("service", ["gateway", "users", "catalog", "cart", "orders", "payment"])
def test_a_body_over_the_limit_is_refused_with_413(shop: ShopProcesses, service: str) -> None:
    too_big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    path = "/api/auth/login" if service == "gateway" else "/anything"
    response = httpx.post(
        f"{shop.url(service)}{path}",
        content=too_big,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert str(MAX_BODY_BYTES) in response.json()["message"]


def test_a_chunked_body_over_the_limit_is_refused_without_content_length(shop: ShopProcesses) -> None:
    """No Content-Length to check up front: the limit is counted while the body arrives."""

    def chunks() -> object:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = httpx.post(
        f"{shop.url('gateway')}/api/auth/login",
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413, response.text


def test_a_body_under_the_limit_still_works(shop: ShopProcesses) -> None:
    response = httpx.post(
        f"{shop.url('gateway')}/api/auth/login",
        json={"email": "nobody@example.com", "password": "wrong-password-1"},
        timeout=10,
    )
    assert response.status_code == 401


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.xx"])
def test_a_malformed_token_gets_a_plain_invalid_token(shop: ShopProcesses, token: str) -> None:
    response = httpx.get(
        f"{shop.url('gateway')}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 401
    message = response.json()["message"]
    assert message == "invalid token: log in again (POST /api/auth/login)", message
    for internal in ("segments", "padding", "Signature", "decode", "Expecting"):
        assert internal not in message, message


def test_the_state_folder_and_the_databases_are_private(shop: ShopProcesses) -> None:
    data = shop.state_dir / "data"
    databases = sorted(data.glob("*.db"))
    assert databases, "no SQLite file"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in databases:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path}: {oct(path.stat().st_mode)}"


def test_options_on_a_path_lists_every_method_it_answers(shop: ShopProcesses) -> None:
    response = httpx.request("OPTIONS", f"{shop.url('gateway')}/api/cart", timeout=10)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "DELETE"}


def test_the_openapi_document_states_what_the_server_enforces(shop: ShopProcesses) -> None:
    import re

    schema = httpx.get(f"{shop.url('gateway')}/openapi.json", timeout=10).json()
    login = schema["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"400", "413", "422"} <= set(login)  # unparseable body, over the limit, invalid fields
    pattern = schema["components"]["schemas"]["Card"]["properties"]["number"]["pattern"]
    for number, valid in [
        ("4242424242424242", True),
        ("4242 4242 4242 4242", True),
        ("424242424242", True),  # 12
        ("42424242424", False),  # 11
        ("42424242424242424242", False),  # 20
        ("4242-abcd-4242-4242", False),
    ]:
        assert bool(re.fullmatch(pattern, number)) is valid, number


def test_a_reused_idempotency_key_with_another_body_is_refused(shop: ShopProcesses) -> None:
    """As Stripe does (`idempotency_error`): the same key with a different request is a client bug, not a
    retry; replaying the first order would hide it. The same key with the same body still replays."""
    import uuid

    from shop.helpers import CARD, Customer

    customer = Customer(shop)
    try:
        customer.add(4)
        key = f"reuse-{uuid.uuid4().hex}"
        first = customer.checkout(key)
        assert first.status_code == 201, first.text
        other_card = {**CARD, "number": "5555555555554444"}
        reused = customer.checkout(key, card=other_card)
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"] == "idempotency_key_reused"
        assert "Idempotency-Key" in reused.json()["message"]
        again = customer.checkout(key)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    finally:
        customer.close()


def test_passwords_are_hashed_at_the_owasp_cost_and_old_hashes_are_rehashed_on_login(
    shop: ShopProcesses,
) -> None:
    """Argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane: Password Storage Cheat Sheet). A PBKDF2-SHA256
    hash of an earlier version still verifies and is replaced by an Argon2id hash by that login."""
    import hashlib
    import os
    import sqlite3
    import time
    import uuid

    gateway = shop.url("gateway")
    email = f"h-{uuid.uuid4().hex[:12]}@example.com"
    registered = httpx.post(
        f"{gateway}/api/auth/register",
        json={"email": email, "password": "password-1", "name": "Hash Test"},
        timeout=15,
    )
    assert registered.status_code == 201, registered.text
    db = sqlite3.connect(shop.state_dir / "data" / "users.db", timeout=10)
    try:
        stored, iterations = db.execute(
            "SELECT password_hash, iterations FROM users WHERE email = ?", (email,)
        ).fetchone()
        assert iterations == 0 and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
        salt = os.urandom(16)
        legacy = hashlib.pbkdf2_hmac("sha256", b"password-1", salt, 1000).hex()
        with db:
            db.execute(
                "UPDATE users SET password_hash = ?, salt = ?, iterations = 1000 WHERE email = ?",
                (legacy, salt.hex(), email),
            )
        login = httpx.post(
            f"{gateway}/api/auth/login", json={"email": email, "password": "password-1"}, timeout=15
        )
        assert login.status_code == 200, login.text
        deadline = time.monotonic() + 10  # the rehash runs after the answer is sent
        while True:
            stored, iterations = db.execute(
                "SELECT password_hash, iterations FROM users WHERE email = ?", (email,)
            ).fetchone()
            if iterations == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert iterations == 0 and stored.startswith("$argon2id$"), stored
        again = httpx.post(
            f"{gateway}/api/auth/login", json={"email": email, "password": "password-1"}, timeout=15
        )
        assert again.status_code == 200, again.text
    finally:
        db.close()


@pytest.mark.parametrize(
    ("service", "method", "path", "body"),
    [
        ("catalog", "PUT", "/products/1/stock", {"stock": 0}),
        (
            "catalog",
            "POST",
            "/reservations",
            {"reservation_id": "x", "items": [{"product_id": 1, "quantity": 1}]},
        ),
        ("catalog", "DELETE", "/reservations/x", None),
        (
            "payment",
            "POST",
            "/charges",
            {
                "order_id": "x",
                "amount_cents": 1,
                "card": {"number": "4242424242424242", "expiry": "12/39", "cvc": "1"},
            },
        ),
    ],
)
def test_internal_routes_need_the_service_credential(
    shop: ShopProcesses, service: str, method: str, path: str, body: dict | None
) -> None:
    """Without the stack's shared service token any local process could free stock or fake a charge."""
    from sample_shop.kit.auth import SERVICE_TOKEN_HEADER

    url = f"{shop.url(service)}{path}"
    anonymous = httpx.request(method, url, json=body, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert SERVICE_TOKEN_HEADER in anonymous.json()["message"]
    wrong = httpx.request(method, url, json=body, headers={SERVICE_TOKEN_HEADER: "guess"}, timeout=10)
    assert wrong.status_code == 401
