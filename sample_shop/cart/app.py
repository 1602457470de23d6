"""cart: one cart per user (the user comes from the verified JWT). A line keeps the product's name and
price as seen when it was added; checkout re-prices from catalog when it reserves stock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sample_shop.cart.models import cart_items, metadata
from sample_shop.kit.app import (
    AuthenticatedUser,
    ServiceApp,
    ServiceContext,
    create_service_app,
    get_context,
    require_user,
)
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import MAX_LINE_QUANTITY, AddItem

log = logging.getLogger("sample_shop.cart")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]
ProductId = Annotated[int, Path(ge=1, le=2_147_483_647)]
CURRENCY = "EUR"


def cart_body(rows: list[Any]) -> dict[str, Any]:
    items = [
        {
            "product_id": r.product_id,
            "name": r.name,
            "unit_price_cents": r.unit_price_cents,
            "quantity": r.quantity,
            "line_total_cents": r.unit_price_cents * r.quantity,
        }
        for r in rows
    ]
    return {
        "items": items,
        "item_count": sum(i["quantity"] for i in items),
        "total_cents": sum(i["line_total_cents"] for i in items),
        "currency": CURRENCY,
    }


def read_cart(conn: Connection, user_id: int) -> dict[str, Any]:
    rows = conn.execute(
        select(cart_items)
        .where(cart_items.c.user_id == user_id)
        .order_by(cart_items.c.added_at, cart_items.c.product_id)
    ).all()
    return cart_body(rows)


@router.get("/cart", summary="the user's cart")
async def get_cart(ctx: Ctx, user: User) -> JSONResponse:
    assert ctx.db is not None
    return JSONResponse(await ctx.db.read(lambda conn: read_cart(conn, user.id)))


@router.post("/cart/items", summary="add a product to the cart (adds to the line's quantity)")
async def add_item(ctx: Ctx, user: User, body: AddItem) -> JSONResponse:
    assert ctx.db is not None and ctx.client is not None
    found = await ctx.client.request(
        "catalog", "GET", f"/products/{body.product_id}", route="/products/{product_id}"
    )
    if found.status == 404:
        raise ShopError(404, "not_found", f"product {body.product_id} does not exist")
    if not found.ok:
        raise ShopError(
            503,
            "dependency_unavailable",
            f"catalog answered HTTP {found.status}",
            headers={"Retry-After": "1"},
        )
    product = found.json()

    def work(conn: Connection) -> dict[str, Any]:
        current = conn.execute(
            select(cart_items.c.quantity).where(
                cart_items.c.user_id == user.id, cart_items.c.product_id == body.product_id
            )
        ).scalar()
        quantity = (current or 0) + body.quantity
        if quantity > MAX_LINE_QUANTITY:
            raise ShopError(
                409,
                "quantity_limit",
                f"a cart line holds at most {MAX_LINE_QUANTITY}; product "
                f"{body.product_id} already has {current}",
            )
        values = {"quantity": quantity, "name": product["name"], "unit_price_cents": product["price_cents"]}
        if current is None:
            conn.execute(
                insert(cart_items).values(
                    user_id=user.id,
                    product_id=body.product_id,
                    added_at=datetime.now(UTC).isoformat(),
                    **values,
                )
            )
        else:
            conn.execute(
                update(cart_items)
                .where(cart_items.c.user_id == user.id, cart_items.c.product_id == body.product_id)
                .values(**values)
            )
        return read_cart(conn, user.id)

    try:
        return JSONResponse(await ctx.db.write(work))
    except IntegrityError:  # the same line added concurrently: the other insert won; add to it
        return JSONResponse(await ctx.db.write(work))


@router.delete("/cart/items/{product_id}", summary="remove a product from the cart (idempotent)")
async def remove_item(ctx: Ctx, user: User, product_id: ProductId) -> JSONResponse:
    def work(conn: Connection) -> dict[str, Any]:
        conn.execute(
            delete(cart_items).where(cart_items.c.user_id == user.id, cart_items.c.product_id == product_id)
        )
        return read_cart(conn, user.id)

    assert ctx.db is not None
    return JSONResponse(await ctx.db.write(work))


@router.delete("/cart", summary="empty the cart (idempotent)")
async def clear_cart(ctx: Ctx, user: User) -> JSONResponse:
    def work(conn: Connection) -> dict[str, Any]:
        conn.execute(delete(cart_items).where(cart_items.c.user_id == user.id))
        return read_cart(conn, user.id)

    assert ctx.db is not None
    return JSONResponse(await ctx.db.write(work))


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "cart", [router], config=config, metadata=metadata, description="One cart per user."
    )
