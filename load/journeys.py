"""The simulated shoppers: user journeys against the gateway's public API (docs/shop.md).

One Locust user is one shopper with a fresh account (register + login on start). Between journeys it
thinks for 1-4 s (scaled by `think_time_factor`; 0 gives the closed loop the benchmarks use). The task
weights follow the shape of a real shop's traffic: most requests look at products (listing, product
pages, search, recommendations), about one in ten puts something in the cart, and a few journeys end in a
checkout - roughly the funnel of a consumer web shop (product views >> add-to-cart >> purchase).

Every request:
- is named by its route template from `topology.JOURNEY_ROUTES` (or the gateway API for routes outside
  it), so statistics group by endpoint and line up with the server's `route` label;
- carries W3C baggage `synthetic=true`, so telemetry can tell synthetic traffic from real;
- checks the status code *and* the body it expects: a 200 with the wrong body is a failure too.

A failed request on a healthy shop is a bug in a journey or in the shop, never noise: failure messages
are short and stable (`HTTP 503 payment_unavailable`) so failures.csv groups them usefully.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from locust import FastHttpUser, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.exception import RescheduleTask

from load.mixes import DEFAULT_MIX, check_mix
from load.routes import (
    CART,
    CART_ITEM,
    CART_ITEMS,
    CART_RECOMMENDATIONS,
    CHECKOUT,
    LOGIN,
    ME,
    ORDER_CANCEL,
    ORDERS,
    PRODUCT,
    PRODUCT_RECOMMENDATIONS,
    PRODUCTS,
    REGISTER,
)
from sample_shop.topology import SYNTHETIC_BAGGAGE_KEY

SUCCESS_CARD = "4242424242424242"  # docs/shop.md test cards: charge succeeds
CATALOG_PAGE_SIZE = 20
SEARCH_FALLBACK_TERMS = ("coffee", "tea", "mug", "book", "lamp", "chair", "bag")
THINK_TIME_S = (1.0, 4.0)  # between journeys
STEP_THINK_TIME_S = (0.3, 1.2)  # between the steps of one journey (reading a page before clicking)
CHECKOUT_ATTEMPTS = 3  # first try + 2 retries, all with the same Idempotency-Key
TOKEN_REFRESH_MARGIN_S = 60.0  # log in again this long before the access token expires


class JourneyFailed(RescheduleTask):
    """Ends a journey early after a failed step; the failure itself is already recorded as a failed
    request, so Locust must not count it again as a journey exception (RescheduleTask = return)."""


def card_expiry(now: datetime | None = None) -> str:
    """MM/YY three years ahead: always in the future, as the payment service demands."""
    now = now or datetime.now(UTC)
    return f"{now.month:02d}/{(now.year + 3) % 100:02d}"


def _is_product(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), int) and isinstance(value.get("name"), str)


def _items_of_products(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return "body has no items list"
    if not all(_is_product(p) for p in body["items"]):
        return "items are not products"
    return None


def _is_cart(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return "body is not a cart"
    if not all(isinstance(line, dict) and isinstance(line.get("product_id"), int) for line in body["items"]):
        return "cart lines without product_id"
    if not isinstance(body.get("total_cents"), int):
        return "cart has no total_cents"
    return None


class ShopUser(FastHttpUser):
    """A shopper with a fresh account. Configure the class with `configure()` before spawning."""

    think_time_factor: ClassVar[float] = 1.0
    default_headers: ClassVar[dict[str, str]] = {"baggage": f"{SYNTHETIC_BAGGAGE_KEY}=true"}
    # Timeouts bound what one stuck request can cost a shopper during a fault (Locust's default is 60 s).
    connection_timeout = 5.0
    network_timeout = 10.0
    max_retries = 0  # a retry is a journey decision (checkout), never hidden in the client

    def wait_time(self) -> float:
        return random.uniform(*THINK_TIME_S) * self.think_time_factor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journey = "register"
        self.email = ""
        self.password = ""
        self.registered = False
        self.token_expires_at = 0.0
        self.products: dict[int, dict[str, Any]] = {}
        self.cart_ids: set[int] = set()

    # -- plumbing ---------------------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        return {"journey": self.journey}

    def pause(self) -> None:
        """Think between two steps of a journey."""
        if self.think_time_factor:
            time.sleep(random.uniform(*STEP_THINK_TIME_S) * self.think_time_factor)

    def call(
        self,
        method: str,
        name: str,
        path: str,
        *,
        expect: Iterable[int] = (200,),
        check: Callable[[Any], str | None] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[ResponseContextManager, Any]:
        """One request, judged by status code and body. Returns the response and its JSON body (None
        when the request failed)."""
        with self.client.request(
            method, path, name=name, json=json, headers=headers, catch_response=True
        ) as resp:
            problem = self._problem(resp, tuple(expect), check)
            if problem:
                resp.failure(problem)
                return resp, None
            resp.success()
            return resp, self._body

    def _problem(
        self, resp: ResponseContextManager, expect: tuple[int, ...], check: Callable[[Any], str | None] | None
    ) -> str | None:
        self._body = None
        status = resp.status_code or 0
        if status == 0:
            error = getattr(resp, "error", None)
            return f"no response: {type(error).__name__ if error else 'connection error'}"
        try:
            self._body = resp.json() if resp.content else None
        except ValueError:
            return f"HTTP {status} with a body that is not JSON"
        if status not in expect:
            code = self._body.get("error") if isinstance(self._body, dict) else None
            return f"HTTP {status} {code or 'unexpected status'}"
        return check(self._body) if check else None

    def remember(self, products: Iterable[dict[str, Any]]) -> None:
        for product in products:
            self.products[product["id"]] = product

    def pick_product(self) -> dict[str, Any]:
        """A product seen before; ones in stock first (a shopper rarely opens a sold-out item twice)."""
        if not self.products:
            self.browse_catalog()
            if not self.products:
                raise JourneyFailed("no product seen")  # the failed listing is already recorded
            self.pause()
        in_stock = [p for p in self.products.values() if p.get("stock", 1) > 0]
        return random.choice(in_stock or list(self.products.values()))

    # -- account ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        # An exception here would kill the user for good, so a failed sign-up is only recorded (as a
        # failed request) and retried by the next journey that needs an account (ensure_login).
        if self.sign_up():
            self.pause()
            self.browse_catalog()

    def sign_up(self) -> bool:
        """Register a fresh account and log in."""
        self.journey = "register"
        self.email = f"load-{uuid.uuid4().hex}@example.com"
        self.password = uuid.uuid4().hex
        _, user = self.call(
            "POST",
            REGISTER,
            REGISTER,
            expect=(201,),
            json={"email": self.email, "password": self.password, "name": "Load Test Shopper"},
            check=lambda b: None if isinstance(b, dict) and b.get("email") == self.email else "not our user",
        )
        if user is None:
            return False
        self.registered = True
        self.pause()
        return self.login()

    def login(self) -> bool:
        self.journey = "login"
        _, body = self.call(
            "POST",
            LOGIN,
            LOGIN,
            json={"email": self.email, "password": self.password},
            check=lambda b: None if isinstance(b, dict) and b.get("access_token") else "no access_token",
        )
        if body is None:
            self.client.auth_header = None
            self.token_expires_at = 0.0
            return False
        self.client.auth_header = f"Bearer {body['access_token']}"
        ttl = float(body.get("expires_in") or 0)
        self.token_expires_at = time.monotonic() + max(0.0, ttl - TOKEN_REFRESH_MARGIN_S)
        return True

    def ensure_login(self) -> None:
        """Journeys that need an account call this first; a token about to expire is renewed."""
        if time.monotonic() < self.token_expires_at:
            return
        journey = self.journey
        ok = self.login() if self.registered else self.sign_up()
        self.journey = journey
        if not ok:
            raise JourneyFailed("no account")  # already recorded as a failed request

    # -- journeys (the @task weights are the `browsing` mix; configure() applies the chosen mix) -------

    @task(20)
    def browse_catalog(self) -> None:
        """List a page of the catalog, sometimes of one category."""
        self.journey = "browse"
        offset = random.choice((0, 0, 0, CATALOG_PAGE_SIZE, 2 * CATALOG_PAGE_SIZE))
        query = f"?limit={CATALOG_PAGE_SIZE}&offset={offset}"
        categories = sorted({p["category"] for p in self.products.values() if p.get("category")})
        if categories and random.random() < 0.3:
            query += f"&category={random.choice(categories)}"
        _, body = self.call("GET", PRODUCTS, PRODUCTS + query, check=_items_of_products)
        if body is not None:
            self.remember(body["items"])

    @task(30)
    def view_product(self) -> None:
        """Open a product page (the gateway includes a few recommendations)."""
        self.journey = "view_product"
        product = self.pick_product()
        _, body = self.call(
            "GET",
            PRODUCT,
            f"/api/products/{product['id']}",
            check=lambda b: (
                None
                if isinstance(b, dict)
                and _is_product(b.get("product"))
                and b["product"]["id"] == product["id"]
                else "not the product asked for"
            ),
        )
        if body is not None:
            self.remember(
                [body["product"], *[p for p in body.get("recommendations") or [] if _is_product(p)]]
            )

    @task(12)
    def search(self) -> None:
        """Search by a word from a product name seen before (or a common term)."""
        self.journey = "search"
        words = [w for p in self.products.values() for w in p["name"].lower().split() if len(w) > 2]
        term = (
            random.choice(words) if words and random.random() < 0.8 else random.choice(SEARCH_FALLBACK_TERMS)
        )
        _, body = self.call(
            "GET", PRODUCTS, f"/api/products?q={term}&limit={CATALOG_PAGE_SIZE}", check=_items_of_products
        )
        if body is not None:
            self.remember(body["items"])

    @task(8)
    def recommendations(self) -> None:
        """Product page, then its 'you may also like' list."""
        self.journey = "recommendations"
        product = self.pick_product()
        _, body = self.call(
            "GET",
            PRODUCT_RECOMMENDATIONS,
            f"/api/products/{product['id']}/recommendations?limit=4",
            check=_items_of_products,
        )
        if body is not None:
            self.remember(body["items"])

    @task(8)
    def view_cart(self) -> None:
        """Look at the cart, and at what the shop recommends for it."""
        self.journey = "view_cart"
        self.ensure_login()
        _, cart = self.call("GET", CART, CART, check=_is_cart)
        if cart is None:
            return
        self.cart_ids = {line["product_id"] for line in cart["items"]}
        if self.cart_ids:
            self.pause()
            self.call(
                "GET", CART_RECOMMENDATIONS, f"{CART_RECOMMENDATIONS}?limit=4", check=_items_of_products
            )

    @task(10)
    def add_to_cart(self) -> None:
        """Open a product page and put one or two of it in the cart."""
        self.journey = "add_to_cart"
        self.ensure_login()
        self.add_product_to_cart()

    @task(3)
    def remove_from_cart(self) -> None:
        """Change one's mind: take a line out of the cart."""
        self.journey = "remove_from_cart"
        self.ensure_login()
        if not self.cart_ids:
            return self.add_product_to_cart()
        product_id = random.choice(sorted(self.cart_ids))
        _, cart = self.call("DELETE", CART_ITEM, f"/api/cart/items/{product_id}", check=_is_cart)
        if cart is not None:
            self.cart_ids = {line["product_id"] for line in cart["items"]}

    @task(4)
    def checkout(self) -> None:
        """Fill the cart if empty, review it, pay with a test card that succeeds."""
        self.journey = "checkout"
        self.ensure_login()
        if not self.cart_ids:
            self.add_product_to_cart()
            self.pause()
        _, cart = self.call("GET", CART, CART, check=_is_cart)
        if cart is None:
            return
        if not cart["items"]:
            self.cart_ids = set()
            return  # nothing to buy (another journey emptied it); a real shopper would not pay
        self.pause()
        self.pay(expected_total=cart["total_cents"])

    @task(4)
    def sign_in_again(self) -> None:
        """A returning shopper signs in (another device, an expired session). Without this journey logins
        happen only when a simulated user starts, so the login SLOs would see no events during an
        experiment's phases and the gate could never judge them."""
        self.journey = "login"
        if not self.registered:
            self.ensure_login()
            return
        if not self.login():
            raise JourneyFailed("login failed")  # already recorded as a failed request

    @task(2)
    def order_history(self) -> None:
        """Check past orders."""
        self.journey = "order_history"
        self.ensure_login()
        self.call(
            "GET",
            ORDERS,
            f"{ORDERS}?limit=10",
            check=lambda b: (
                None if isinstance(b, dict) and isinstance(b.get("items"), list) else "no items list"
            ),
        )

    @task(1)
    def edit_profile(self) -> None:
        """Change the display name (PATCH /api/me)."""
        self.journey = "edit_profile"
        self.ensure_login()
        name = f"Shopper {uuid.uuid4().hex[:6]}"
        self.call(
            "PATCH",
            ME,
            ME,
            json={"name": name},
            check=lambda b: None if isinstance(b, dict) and b.get("name") == name else "name not changed",
        )

    @task(1)
    def cancel_order(self) -> None:
        """Look at past orders and cancel one that has not shipped, when there is one (refund, stock back)."""
        self.journey = "cancel_order"
        self.ensure_login()
        _, listing = self.call(
            "GET",
            ORDERS,
            f"{ORDERS}?limit=10",
            check=lambda b: (
                None if isinstance(b, dict) and isinstance(b.get("items"), list) else "no items list"
            ),
        )
        paid = [o for o in (listing or {}).get("items", []) if o.get("status") == "paid"]
        if not paid:
            return  # nothing to cancel: a shopper would only have looked
        self.pause()
        order = random.choice(paid)
        self.call(
            "POST",
            ORDER_CANCEL,
            f"/api/orders/{order['id']}/cancel",
            check=lambda b: (
                None if isinstance(b, dict) and b.get("status") == "cancelled" else "not cancelled"
            ),
        )

    # -- steps shared by journeys -------------------------------------------------------------------

    def add_product_to_cart(self) -> None:
        product = self.pick_product()
        _, detail = self.call(
            "GET",
            PRODUCT,
            f"/api/products/{product['id']}",
            check=lambda b: None if isinstance(b, dict) and _is_product(b.get("product")) else "no product",
        )
        if detail is None:
            return
        self.remember([detail["product"]])
        if detail["product"].get("stock", 1) <= 0:
            return  # sold out: a shopper would not try
        self.pause()
        _, cart = self.call(
            "POST",
            CART_ITEMS,
            CART_ITEMS,
            json={"product_id": product["id"], "quantity": random.choice((1, 1, 1, 2))},
            check=lambda b: (
                _is_cart(b)
                or (
                    None
                    if any(line["product_id"] == product["id"] for line in b["items"])
                    else "item not in cart"
                )
            ),
        )
        if cart is not None:
            self.cart_ids = {line["product_id"] for line in cart["items"]}

    def pay(self, expected_total: int) -> None:
        """POST /api/checkout; a transient failure is retried with the same Idempotency-Key, so a retry
        can never pay twice."""
        key = f"load-{uuid.uuid4().hex}"
        body = {"card": {"number": SUCCESS_CARD, "expiry": card_expiry(), "cvc": "123"}}

        def is_paid_order(b: Any) -> str | None:
            if not isinstance(b, dict) or not isinstance(b.get("id"), str):
                return "body is not an order"
            if b.get("status") != "paid":
                return f"order status {b.get('status')!r}"
            if b.get("idempotency_key") != key:
                return "order has another idempotency key"
            return None

        for attempt in range(CHECKOUT_ATTEMPTS):
            resp, order = self.call(
                "POST",
                CHECKOUT,
                CHECKOUT,
                json=body,
                headers={"Idempotency-Key": key},
                # 200 is a replay of an earlier attempt that completed (only possible on a retry)
                expect=(201, 200) if attempt else (201,),
                check=is_paid_order,
            )
            if order is not None:
                self.cart_ids = set()
                return
            status = resp.status_code or 0
            retryable = (
                status == 0
                or status >= 500
                or (status == 409 and self._error_code() == "checkout_in_progress")
            )
            if not retryable or attempt == CHECKOUT_ATTEMPTS - 1:
                return
            retry_after = resp.headers.get("Retry-After") if resp.headers else None
            delay = float(retry_after) if retry_after and retry_after.isdigit() else 0.5 * 2**attempt
            time.sleep(delay * random.uniform(0.8, 1.2))

    def _error_code(self) -> str | None:
        return self._body.get("error") if isinstance(self._body, dict) else None


def configure(think_time_factor: float, mix: str = DEFAULT_MIX) -> type[ShopUser]:
    """The user class to run: its think time scaled (0 = no thinking: the benchmarks' closed loop) and
    its journeys weighted by the named mix (load/mixes.py)."""
    weights = check_mix(mix).weights
    user_class = type(f"ShopUser_{mix}", (ShopUser,), {"__module__": __name__})
    # Set after class creation: Locust's user metaclass would merge a class-body `tasks` with the
    # base class's @task weights instead of replacing them. Locust picks uniformly from this list.
    user_class.tasks = [getattr(ShopUser, j) for j, weight in weights.items() for _ in range(weight)]
    user_class.think_time_factor = think_time_factor
    return user_class
