"""catalog: the admin console's product routes (create, edit name, description, price and stock).
Admin tokens only (kit/app.py `require_admin`); the gateway checks the role too, before calling here."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from sample_shop.catalog.models import products
from sample_shop.catalog.seed import CURRENCY
from sample_shop.kit.app import AuthenticatedUser, ServiceContext, get_context, require_admin
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import NewProduct, ProductEdit

log = logging.getLogger("sample_shop.catalog")
Ctx = Annotated[ServiceContext, Depends(get_context)]
Admin = Annotated[AuthenticatedUser, Depends(require_admin)]
ProductId = Annotated[int, Path(ge=1, le=2_147_483_647, description="product id")]


def create_routes(product_dict: Any) -> APIRouter:
    router = APIRouter(prefix="/admin")

    @router.post("/products", status_code=201, summary="create a product")
    async def create_product(ctx: Ctx, admin: Admin, body: NewProduct) -> JSONResponse:
        def work(conn: Connection) -> Any:
            result = conn.execute(
                insert(products).values(
                    sku=f"ADM-{uuid.uuid4().hex[:12].upper()}",
                    name=body.name,
                    description=body.description,
                    category=body.category,
                    price_cents=body.price_cents,
                    currency=CURRENCY,
                    stock=body.stock,
                )
            )
            return conn.execute(select(products).where(products.c.id == result.inserted_primary_key[0])).one()

        assert ctx.db is not None
        row = await ctx.db.write(work)
        log.info(
            "product created",
            extra={"fields": {"event": "product_created", "product_id": row.id, "admin_id": admin.id}},
        )
        return JSONResponse(product_dict(row), status_code=201)

    @router.patch("/products/{product_id}", summary="edit a product's name, description, price or stock")
    async def edit_product(ctx: Ctx, admin: Admin, product_id: ProductId, body: ProductEdit) -> JSONResponse:
        values = body.model_dump(exclude_none=True)
        if not values:
            raise ShopError(
                422, "nothing_to_change", "send at least one of name, description, price_cents, stock"
            )

        def work(conn: Connection) -> Any:
            conn.execute(update(products).where(products.c.id == product_id).values(**values))
            return conn.execute(select(products).where(products.c.id == product_id)).first()

        assert ctx.db is not None
        row = await ctx.db.write(work)
        if row is None:
            raise ShopError(404, "not_found", f"product {product_id} does not exist")
        log.info(
            "product edited",
            extra={
                "fields": {
                    "event": "product_edited",
                    "product_id": product_id,
                    "fields_changed": sorted(values),
                }
            },
        )
        return JSONResponse(product_dict(row))

    return router
