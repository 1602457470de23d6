"""gateway: the account, cancellation and admin routes of the public API (docs/shop.md, "Accounts",
"Order lifecycle", "Admin API"). Admin routes check the admin role here first (403 `admin_only` without a
downstream call); the services behind them check it again."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from sample_shop import topology
from sample_shop.gateway.app import AUTH, Ctx, ProductId, User, call, relay
from sample_shop.gateway.slo_status import fetch_slo_status
from sample_shop.kit.app import AuthenticatedUser, require_admin
from sample_shop.kit.config import read_env_str
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import NewProduct, PasswordChange, ProductEdit, ProfileEdit, StatusChange

router = APIRouter()
Admin = Annotated[AuthenticatedUser, Depends(require_admin)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
ADMIN = {**AUTH, 403: {"description": "not an admin (`admin_only`)"}}
CANCEL_TIMEOUT_FACTOR = 3.0  # a cancel wraps orders' calls to catalog and payment
PROMETHEUS_URL_VARIABLE = "SHOP_PROMETHEUS_URL"


def prometheus_url() -> str:
    default = f"http://127.0.0.1:{topology.PROMETHEUS_PORT + topology.port_offset()}"
    return read_env_str(os.environ, PROMETHEUS_URL_VARIABLE, default).rstrip("/")


@router.patch("/api/me", summary="change the logged-in user's name", responses=AUTH)
async def edit_me(ctx: Ctx, user: User, body: ProfileEdit) -> JSONResponse:
    return relay(
        await call(
            ctx, "users", "PATCH", "/users/me", "/users/me", token=user.token, json_body=body.model_dump()
        )
    )


@router.post(
    "/api/me/password",
    status_code=204,
    summary="change the password (the old one is required)",
    responses={
        401: {"description": "`wrong_password` (or no valid token)"},
        422: {"description": "`weak_password`"},
    },
)
async def change_password(ctx: Ctx, user: User, body: PasswordChange) -> Response:
    answer = await call(
        ctx,
        "users",
        "POST",
        "/users/me/password",
        "/users/me/password",
        token=user.token,
        json_body=body.model_dump(),
    )
    return Response(status_code=204) if answer.status == 204 else relay(answer)


@router.post(
    "/api/orders/{order_id}/cancel",
    summary="cancel an order that has not shipped: refund and stock release (idempotent)",
    responses={
        **AUTH,
        404: {"description": "no such order for this user"},
        409: {"description": "`order_not_cancellable` (shipped, delivered or never paid)"},
        503: {"description": "`refund_pending`: cancelled, refund not through yet; cancel again"},
    },
)
async def cancel_order(ctx: Ctx, user: User, order_id: OrderId) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "orders",
            "POST",
            f"/orders/{order_id}/cancel",
            "/orders/{order_id}/cancel",
            token=user.token,
            timeout_factor=CANCEL_TIMEOUT_FACTOR,
        )
    )


@router.get("/api/admin/products", summary="products for the admin console", responses=ADMIN)
async def admin_products(
    ctx: Ctx,
    admin: Admin,
    q: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if q:
        params["q"] = q
    if category:
        params["category"] = category
    return relay(
        await call(ctx, "catalog", "GET", "/products", "/products", params=params, token=admin.token)
    )


@router.post("/api/admin/products", status_code=201, summary="create a product", responses=ADMIN)
async def admin_create_product(ctx: Ctx, admin: Admin, body: NewProduct) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "catalog",
            "POST",
            "/admin/products",
            "/admin/products",
            token=admin.token,
            json_body=body.model_dump(),
        )
    )


@router.patch(
    "/api/admin/products/{product_id}",
    summary="edit a product's name, description, price or stock",
    responses={**ADMIN, 404: {"description": "no such product"}},
)
async def admin_edit_product(
    ctx: Ctx, admin: Admin, product_id: ProductId, body: ProductEdit
) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "catalog",
            "PATCH",
            f"/admin/products/{product_id}",
            "/admin/products/{product_id}",
            token=admin.token,
            json_body=body.model_dump(exclude_none=True),
        )
    )


@router.get(
    "/api/admin/orders", summary="all orders, newest first, filtered by status and user", responses=ADMIN
)
async def admin_orders(
    ctx: Ctx,
    admin: Admin,
    status: Annotated[str | None, Query(max_length=16)] = None,
    user: Annotated[int | None, Query(ge=1, le=2_147_483_647, description="user id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status:
        params["status"] = status
    if user is not None:
        params["user"] = user
    return relay(
        await call(ctx, "orders", "GET", "/admin/orders", "/admin/orders", token=admin.token, params=params)
    )


@router.get("/api/admin/orders/{order_id}", summary="any order, with its history", responses=ADMIN)
async def admin_order(ctx: Ctx, admin: Admin, order_id: OrderId) -> JSONResponse:
    return relay(
        await call(
            ctx, "orders", "GET", f"/admin/orders/{order_id}", "/admin/orders/{order_id}", token=admin.token
        )
    )


@router.post(
    "/api/admin/orders/{order_id}/status",
    summary="advance an order: shipped, delivered (or cancelled, with refund)",
    responses={**ADMIN, 409: {"description": "`invalid_transition` or `order_not_cancellable`"}},
)
async def admin_order_status(ctx: Ctx, admin: Admin, order_id: OrderId, body: StatusChange) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "orders",
            "POST",
            f"/admin/orders/{order_id}/status",
            "/admin/orders/{order_id}/status",
            token=admin.token,
            json_body=body.model_dump(),
            timeout_factor=CANCEL_TIMEOUT_FACTOR,
        )
    )


@router.post(
    "/api/admin/orders/{order_id}/cancel",
    summary="cancel any order that has not shipped, with refund (idempotent)",
    responses={**ADMIN, 409: {"description": "`order_not_cancellable`"}},
)
async def admin_order_cancel(ctx: Ctx, admin: Admin, order_id: OrderId) -> JSONResponse:
    return relay(
        await call(
            ctx,
            "orders",
            "POST",
            f"/admin/orders/{order_id}/cancel",
            "/admin/orders/{order_id}/cancel",
            token=admin.token,
            timeout_factor=CANCEL_TIMEOUT_FACTOR,
        )
    )


@router.get(
    "/api/admin/analytics",
    summary="orders and revenue per minute, top products, SLO status",
    responses=ADMIN,
)
async def admin_analytics(
    ctx: Ctx,
    admin: Admin,
    minutes: Annotated[int, Query(ge=1, le=24 * 60)] = 60,
) -> JSONResponse:
    answer = await call(
        ctx,
        "orders",
        "GET",
        "/admin/analytics",
        "/admin/analytics",
        token=admin.token,
        params={"minutes": minutes},
    )
    if not answer.ok:
        return relay(answer)
    body = answer.json()
    if not isinstance(body, dict):
        raise ShopError(502, "dependency_error", "orders answered the analytics without a JSON object")
    url = prometheus_url()
    states, problem = await fetch_slo_status(url)
    if problem is not None:
        states = [{"name": "all SLOs", "sli": None, "target": None, "state": "unknown", "message": problem}]
    return JSONResponse({**body, "slo_status": states, "prometheus": url})
