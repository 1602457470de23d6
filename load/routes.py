"""The gateway routes the journeys call, by route template (the request names in every statistic).

Locust-free, so tests and the report can import the names without Locust's gevent patching."""

from __future__ import annotations

from sample_shop.topology import JOURNEY_ROUTES


def _route(journey: str, method: str, template: str) -> str:
    """The route template, checked against topology so a renamed route breaks loudly, not silently."""
    if (method, template) not in JOURNEY_ROUTES[journey]:
        raise KeyError(f"{method} {template} is not in topology.JOURNEY_ROUTES[{journey!r}]")
    return template


PRODUCTS = _route("browse", "GET", "/api/products")
PRODUCT = _route("browse", "GET", "/api/products/{product_id}")
PRODUCT_RECOMMENDATIONS = _route("browse", "GET", "/api/products/{product_id}/recommendations")
CART = _route("cart", "GET", "/api/cart")
CART_ITEMS = _route("cart", "POST", "/api/cart/items")
CART_ITEM = _route("cart", "DELETE", "/api/cart/items/{product_id}")
CHECKOUT = _route("checkout", "POST", "/api/checkout")
LOGIN = _route("login", "POST", "/api/auth/login")
# Gateway routes outside the SLO'd journeys (docs/shop.md)
REGISTER = "/api/auth/register"
CART_RECOMMENDATIONS = "/api/recommendations"
ORDERS = "/api/orders"
ME = "/api/me"  # profile edit (PATCH)
ORDER_CANCEL = "/api/orders/{order_id}/cancel"

ALL_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", PRODUCTS), ("GET", PRODUCT), ("GET", PRODUCT_RECOMMENDATIONS), ("GET", CART),
    ("POST", CART_ITEMS), ("DELETE", CART_ITEM), ("POST", CHECKOUT), ("POST", LOGIN), ("POST", REGISTER),
    ("GET", CART_RECOMMENDATIONS), ("GET", ORDERS), ("PATCH", ME), ("POST", ORDER_CANCEL),
)  # fmt: skip
JOURNEYS: tuple[str, ...] = (
    "register", "login", "browse", "view_product", "search", "recommendations", "view_cart", "add_to_cart",
    "remove_from_cart", "checkout", "order_history", "edit_profile", "cancel_order",
)  # fmt: skip
