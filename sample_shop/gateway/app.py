"""gateway: the shop's public API (docs/shop.md); it also serves the storefront and admin pages (pages.py).

Its routes are exactly topology.JOURNEY_ROUTES plus the account, order-history and cart-recommendation
routes, health and metrics. It validates input, verifies the user's JWT itself (early 401 without a
downstream call) and forwards the token. Degradation is deliberate: recommendations are optional (a failure
gives `degraded: true` and an empty list), while catalog is essential (a catalog outage fails browsing).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from sample_shop.gateway import pages
from sample_shop.kit.app import (
    AuthenticatedUser,
    ServiceApp,
    ServiceContext,
    create_service_app,
    get_context,
    require_user,
)
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError, UpstreamError
from sample_shop.kit.http_client import UpstreamResponse
from sample_shop.kit.wire import (
    MAX_ID,
    AddItem,
    CheckoutRequest,
    Credentials,
    IdempotencyKey,
    Registration,
)

log = logging.getLogger("sample_shop.gateway")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="product id")]
Limit = Annotated[int, Query(ge=1, le=20, description="how many recommendations")]
RELAYED_HEADERS = ("retry-after", "idempotent-replayed", "www-authenticate")
CHECKOUT_TIMEOUT_FACTOR = 5.0  # checkout wraps three downstream calls: its timeout must exceed theirs
AUTH = {401: {"description": "missing, malformed or expired token"}}


def relay(response: UpstreamResponse) -> JSONResponse:
    """Answer with a dependency's answer (status, JSON body, the headers that matter to clients)."""
    body = response.json()
    if body is None:
        raise ShopError(
            502,
            "dependency_error",
            f"{response.peer} answered HTTP {response.status} without a JSON body",
            peer=response.peer,
        )
    headers = {k: v for k, v in response.headers.items() if k.lower() in RELAYED_HEADERS}
    return JSONResponse(body, status_code=response.status, headers=headers)


def essential(response: UpstreamResponse) -> Any:
    """The JSON of a successful answer from an essential dependency; its error otherwise."""
    if response.ok:
        body = response.json()
        if body is not None:
            return body
    raise _Relay(response)


class _Relay(Exception):
    def __init__(self, response: UpstreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


async def call(
    ctx: ServiceContext, peer: str, method: str, path: str, route: str, **kwargs: Any
) -> UpstreamResponse:
    assert ctx.client is not None
    return await ctx.client.request(peer, method, path, route=route, **kwargs)


async def optional_recommendations(
    ctx: ServiceContext, path: str, route: str, params: dict[str, Any]
) -> tuple[list[Any], bool]:
    """(items, degraded): recommendations never fail a page."""
    try:
        response = await call(ctx, "recommendations", "GET", path, route, params=params)
    except UpstreamError as exc:
        log.info("recommendations unavailable: %s", exc)
        return [], True
    body = response.json() if response.ok else None
    if body is None:
        return [], True
    return body.get("items", []), False


@router.post(
    "/api/auth/register",
    status_code=201,
    summary="create an account",
    responses={409: {"description": "email already registered"}},
)
async def register(ctx: Ctx, body: Registration) -> JSONResponse:
    return relay(
        await call(ctx, "users", "POST", "/users/register", "/users/register", json_body=body.model_dump())
    )


@router.post(
    "/api/auth/login",
    summary="log in; returns a short-lived bearer token",
    responses={401: {"description": "unknown email or wrong password"}},
)
async def login(ctx: Ctx, body: Credentials) -> JSONResponse:
    return relay(
        await call(ctx, "users", "POST", "/users/login", "/users/login", json_body=body.model_dump())
    )


@router.get("/api/me", summary="the logged-in user", responses=AUTH)
async def me(ctx: Ctx, user: User) -> JSONResponse:
    return relay(await call(ctx, "users", "GET", "/users/me", "/users/me", token=user.token))


@router.get("/api/products", summary="search and list products")
async def list_products(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=100, description="text in name or description")] = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if q:
        params["q"] = q
    if category:
        params["category"] = category
    return relay(await call(ctx, "catalog", "GET", "/products", "/products", params=params))


@router.get(
    "/api/products/{product_id}",
    summary="a product page: the product and its recommendations",
    responses={404: {"description": "no such product"}},
)
async def product_page(ctx: Ctx, product_id: ProductId) -> JSONResponse:
    product_call = call(ctx, "catalog", "GET", f"/products/{product_id}", "/products/{product_id}")
    recs_call = optional_recommendations(
        ctx, f"/recommendations/products/{product_id}", "/recommendations/products/{product_id}", {"limit": 4}
    )
    product_result, (recommendations, degraded) = await asyncio.gather(
        product_call, recs_call, return_exceptions=False
    )
    try:
        product = essential(product_result)
    except _Relay as exc:
        return relay(exc.response)
    headers = {"X-Degraded": "recommendations"} if degraded else None
    return JSONResponse(
        {"product": product, "recommendations": recommendations, "degraded": degraded}, headers=headers
    )


@router.get(
    "/api/products/{product_id}/recommendations",
    summary="products related to a product",
    responses={404: {"description": "no such product"}},
)
async def product_recommendations(ctx: Ctx, product_id: ProductId, limit: Limit = 4) -> JSONResponse:
    try:
        response = await call(
            ctx,
            "recommendations",
            "GET",
            f"/recommendations/products/{product_id}",
            "/recommendations/products/{product_id}",
            params={"limit": limit},
        )
    except UpstreamError as exc:
        log.info("recommendations unavailable: %s", exc)
        return JSONResponse({"items": [], "degraded": True}, headers={"X-Degraded": "recommendations"})
    if response.status == 404:
        return relay(response)
    body = response.json() if response.ok else None
    if body is None:
        return JSONResponse({"items": [], "degraded": True}, headers={"X-Degraded": "recommendations"})
    return JSONResponse({"items": body.get("items", []), "degraded": False})


@router.get("/api/cart", summary="the user's cart", responses=AUTH)
async def get_cart(ctx: Ctx, user: User) -> JSONResponse:
    return relay(await call(ctx, "cart", "GET", "/cart", "/cart", token=user.token))


@router.post(
    "/api/cart/items",
    summary="add a product to the cart",
    responses={
        **AUTH,
        404: {"description": "no such product"},
        409: {"description": "a line holds at most 99"},
    },
)
async def add_to_cart(ctx: Ctx, user: User, body: AddItem) -> JSONResponse:
    return relay(
        await call(
            ctx, "cart", "POST", "/cart/items", "/cart/items", token=user.token, json_body=body.model_dump()
        )
    )


@router.delete("/api/cart/items/{product_id}", summary="remove a product from the cart", responses=AUTH)
async def remove_from_cart(ctx: Ctx, user: User, product_id: ProductId) -> JSONResponse:
    return relay(
        await call(
            ctx, "cart", "DELETE", f"/cart/items/{product_id}", "/cart/items/{product_id}", token=user.token
        )
    )


@router.delete("/api/cart", summary="empty the cart", responses=AUTH)
async def clear_cart(ctx: Ctx, user: User) -> JSONResponse:
    return relay(await call(ctx, "cart", "DELETE", "/cart", "/cart", token=user.token))


@router.post(
    "/api/checkout",
    status_code=201,
    summary="check the cart out (idempotent per Idempotency-Key)",
    responses={
        **AUTH,
        200: {"description": "replay of an earlier checkout with the same key"},
        402: {"description": "payment declined"},
        409: {"description": "cart empty, out of stock, or checkout in progress"},
        503: {"description": "a dependency is unavailable; retry with the same key"},
    },
)
async def checkout(
    ctx: Ctx,
    user: User,
    body: CheckoutRequest,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    response = await call(
        ctx,
        "orders",
        "POST",
        "/checkout",
        "/checkout",
        token=user.token,
        idempotency_key=idempotency_key,
        json_body=body.model_dump(),
        timeout_factor=CHECKOUT_TIMEOUT_FACTOR,
    )
    order_id = (response.json() or {}).get("id") if response.ok else None
    log.info(
        "checkout answered",
        extra={
            "fields": {
                "event": "checkout",
                "status": response.status,
                "order_id": order_id,
                "user_id": user.id,
            }
        },
    )
    return relay(response)


@router.get("/api/orders", summary="the user's orders, newest first", responses=AUTH)
async def list_orders(
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "orders",
            "GET",
            "/orders",
            "/orders",
            token=user.token,
            params={"limit": limit, "offset": offset},
        )
    )


@router.get(
    "/api/orders/{order_id}",
    summary="one of the user's orders",
    responses={**AUTH, 404: {"description": "no such order for this user"}},
)
async def get_order(
    ctx: Ctx,
    user: User,
    order_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")],
) -> JSONResponse:
    return relay(
        await call(ctx, "orders", "GET", f"/orders/{order_id}", "/orders/{order_id}", token=user.token)
    )


@router.get("/api/recommendations", summary="products related to the cart", responses=AUTH)
async def cart_recommendations(ctx: Ctx, user: User, limit: Limit = 4) -> JSONResponse:
    cart = await call(ctx, "cart", "GET", "/cart", "/cart", token=user.token)
    if not cart.ok:
        return relay(cart)
    ids = [line["product_id"] for line in (cart.json() or {}).get("items", [])]
    if not ids:
        return JSONResponse({"items": [], "degraded": False})
    items, degraded = await optional_recommendations(
        ctx, "/recommendations", "/recommendations", {"product_ids": ",".join(map(str, ids)), "limit": limit}
    )
    headers = {"X-Degraded": "recommendations"} if degraded else None
    return JSONResponse({"items": items, "degraded": degraded}, headers=headers)


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    from sample_shop.gateway import manage_api  # it builds on this module's helpers, so it is imported last

    app = create_service_app(
        "gateway",
        [pages.router, router, manage_api.router],
        config=config,
        description="The sample shop's public API. See docs/shop.md.",
    )

    async def on_relay(_request: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _Relay)
        return relay(exc.response)

    app.api.add_exception_handler(_Relay, on_relay)
    return app
