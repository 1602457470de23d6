"""catalog: products, search, stock and reservations.

Reserving is one write transaction of atomic `stock = stock - q WHERE stock >= q` updates: all lines or
none, so concurrent checkouts of the last item can never oversell (SQLite: BEGIN IMMEDIATE serialises
writers across threads and replicas; PostgreSQL: the conditional UPDATE takes the row lock).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sample_shop.catalog import admin
from sample_shop.catalog.models import metadata, products, reservation_items, reservations
from sample_shop.catalog.seed import seed_products
from sample_shop.kit.app import ServiceApp, ServiceContext, create_service_app, get_context, require_service
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError

log = logging.getLogger("sample_shop.catalog")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
ProductId = Annotated[int, Path(ge=1, le=2_147_483_647, description="product id")]
MAX_ID = 2_147_483_647


class ReservationLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=10_000)


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reservation_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    items: list[ReservationLine] = Field(min_length=1, max_length=100)


class StockUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stock: int = Field(ge=0, le=1_000_000_000)


class OutOfStock(Exception):
    def __init__(self, product_ids: list[int], unknown: list[int]) -> None:
        super().__init__("out of stock")
        self.product_ids = product_ids
        self.unknown = unknown


def product_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "category": row.category,
        "price_cents": row.price_cents,
        "currency": row.currency,
        "stock": row.stock,
    }


def _parse_ids(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ShopError(
            422,
            "validation_error",
            "query.ids: must be comma-separated product ids, e.g. 1,2,3",
            errors=[{"field": "query.ids", "message": "must be comma-separated integers"}],
        ) from None
    if len(ids) > 100 or any(not 1 <= i <= MAX_ID for i in ids):
        raise ShopError(
            422,
            "validation_error",
            "query.ids: at most 100 ids, each between 1 and 2147483647",
            errors=[{"field": "query.ids", "message": "at most 100 ids in 1..2147483647"}],
        )
    return ids


@router.get("/products", summary="search and list products")
async def list_products(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=100, description="text in name or description")] = None,
    category: Annotated[str | None, Query(max_length=50)] = None,
    ids: Annotated[str | None, Query(max_length=1200, description="comma-separated product ids")] = None,
    related_to: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_ID,
            description="products in the same category as this product (itself included); 404 if it does "
            "not exist. Recommendations ask this in one call instead of the product, then its category",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    id_list = _parse_ids(ids)

    def query(conn: Connection) -> dict[str, Any]:
        where = []
        if q:
            pattern = f"%{q.lower()}%"
            where.append(
                or_(
                    func.lower(products.c.name).like(pattern),
                    func.lower(products.c.description).like(pattern),
                )
            )
        if category:
            where.append(products.c.category == category)
        if id_list is not None:
            where.append(products.c.id.in_(id_list))
        if related_to is not None:
            category_of = select(products.c.category).where(products.c.id == related_to).scalar_subquery()
            where.append(products.c.category == category_of)
        total = conn.execute(select(func.count()).select_from(products).where(*where)).scalar_one()
        rows = conn.execute(
            select(products).where(*where).order_by(products.c.id).limit(limit).offset(offset)
        ).all()
        return {"items": [product_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    assert ctx.db is not None
    page = await ctx.db.read(query)
    if related_to is not None and page["total"] == 0 and not (q or category or id_list):
        # the product is in its own category: no rows at all means there is no such product
        raise ShopError(404, "not_found", f"product {related_to} does not exist")
    return JSONResponse(page)


@router.get("/products/{product_id}", summary="one product")
async def get_product(ctx: Ctx, product_id: ProductId) -> JSONResponse:
    assert ctx.db is not None
    row = await ctx.db.read(
        lambda conn: conn.execute(select(products).where(products.c.id == product_id)).first()
    )
    if row is None:
        raise ShopError(404, "not_found", f"product {product_id} does not exist")
    return JSONResponse(product_dict(row))


@router.get("/categories", summary="product categories")
async def list_categories(ctx: Ctx) -> JSONResponse:
    assert ctx.db is not None
    rows = await ctx.db.read(
        lambda conn: conn.execute(select(products.c.category).distinct().order_by(products.c.category)).all()
    )
    return JSONResponse({"items": [r.category for r in rows]})


@router.put(
    dependencies=[Depends(require_service)],
    path="/products/{product_id}/stock",
    summary="set a product's stock (operations and tests)",
)
async def set_stock(ctx: Ctx, product_id: ProductId, body: StockUpdate) -> JSONResponse:
    assert ctx.db is not None

    def work(conn: Connection) -> Any:
        conn.execute(update(products).where(products.c.id == product_id).values(stock=body.stock))
        return conn.execute(select(products).where(products.c.id == product_id)).first()

    row = await ctx.db.write(work)
    if row is None:
        raise ShopError(404, "not_found", f"product {product_id} does not exist")
    return JSONResponse(product_dict(row))


def _reservation_body(conn: Connection, reservation_id: str, status: str) -> dict[str, Any]:
    lines = conn.execute(
        select(reservation_items)
        .where(reservation_items.c.reservation_id == reservation_id)
        .order_by(reservation_items.c.product_id)
    ).all()
    items = [
        {
            "product_id": r.product_id,
            "name": r.name,
            "quantity": r.quantity,
            "unit_price_cents": r.unit_price_cents,
        }
        for r in lines
    ]
    return {
        "reservation_id": reservation_id,
        "status": status,
        "items": items,
        "total_cents": sum(i["quantity"] * i["unit_price_cents"] for i in items),
    }


@router.post(
    dependencies=[Depends(require_service)],
    path="/reservations",
    status_code=201,
    summary="reserve stock for an order attempt (idempotent)",
)
async def reserve(ctx: Ctx, body: ReservationRequest) -> JSONResponse:
    wanted: dict[int, int] = {}
    for line in body.items:
        wanted[line.product_id] = wanted.get(line.product_id, 0) + line.quantity

    def work(conn: Connection) -> tuple[int, dict[str, Any]]:
        existing = conn.execute(select(reservations).where(reservations.c.id == body.reservation_id)).first()
        if existing is not None:
            if existing.status == "released":
                raise ShopError(
                    409,
                    "reservation_released",
                    f"reservation {body.reservation_id} was released; use a new reservation id",
                )
            return 200, _reservation_body(conn, body.reservation_id, existing.status)
        short, unknown = [], []
        for product_id, quantity in sorted(wanted.items()):  # fixed order: no lock-order inversions
            done = conn.execute(
                update(products)
                .where(products.c.id == product_id, products.c.stock >= quantity)
                .values(stock=products.c.stock - quantity)
            ).rowcount
            if done != 1:
                exists = conn.execute(select(products.c.id).where(products.c.id == product_id)).first()
                (short if exists else unknown).append(product_id)
        if short or unknown:
            raise OutOfStock(short, unknown)  # rolls the whole transaction back
        now = datetime.now(UTC).isoformat()
        conn.execute(
            insert(reservations).values(
                id=body.reservation_id, order_id=body.order_id, status="reserved", created_at=now
            )
        )
        rows = conn.execute(select(products).where(products.c.id.in_(list(wanted)))).all()
        conn.execute(
            insert(reservation_items),
            [
                {
                    "reservation_id": body.reservation_id,
                    "product_id": r.id,
                    "quantity": wanted[r.id],
                    "unit_price_cents": r.price_cents,
                    "name": r.name,
                }
                for r in rows
            ],
        )
        return 201, _reservation_body(conn, body.reservation_id, "reserved")

    assert ctx.db is not None
    try:
        status, result = await ctx.db.write(work)
    except OutOfStock as exc:
        if exc.unknown:
            raise ShopError(
                404, "not_found", f"products {exc.unknown} do not exist", product_ids=exc.unknown
            ) from None
        raise ShopError(
            409,
            "out_of_stock",
            f"not enough stock for products {exc.product_ids}",
            product_ids=exc.product_ids,
        ) from None
    except IntegrityError:  # a concurrent duplicate of the same reservation won the insert
        status, result = (
            200,
            await ctx.db.read(lambda c: _reservation_body(c, body.reservation_id, "reserved")),
        )
    if status == 201:
        log.info(
            "stock reserved",
            extra={
                "fields": {
                    "event": "stock_reserved",
                    "order_id": body.order_id,
                    "reservation_id": body.reservation_id,
                    "total_cents": result["total_cents"],
                }
            },
        )
    return JSONResponse(result, status_code=status)


@router.delete(
    dependencies=[Depends(require_service)],
    path="/reservations/{reservation_id}",
    summary="release a reservation (idempotent)",
)
async def release(
    ctx: Ctx,
    reservation_id: Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")],
) -> JSONResponse:
    def work(conn: Connection) -> dict[str, Any]:
        existing = conn.execute(select(reservations).where(reservations.c.id == reservation_id)).first()
        if existing is None:
            order_id = reservation_id.split(":", 1)[0][:64]
            conn.execute(
                insert(reservations).values(
                    id=reservation_id,
                    order_id=order_id,
                    status="released",
                    created_at=datetime.now(UTC).isoformat(),
                )
            )
            return {"reservation_id": reservation_id, "status": "released", "items": [], "total_cents": 0}
        if existing.status == "reserved":
            for line in conn.execute(
                select(reservation_items).where(reservation_items.c.reservation_id == reservation_id)
            ).all():
                conn.execute(
                    update(products)
                    .where(products.c.id == line.product_id)
                    .values(stock=products.c.stock + line.quantity)
                )
            conn.execute(
                update(reservations).where(reservations.c.id == reservation_id).values(status="released")
            )
        return _reservation_body(conn, reservation_id, "released")

    assert ctx.db is not None
    result = await ctx.db.write(work)
    log.info(
        "reservation released",
        extra={"fields": {"event": "stock_released", "reservation_id": reservation_id}},
    )
    return JSONResponse(result)


async def seed(ctx: ServiceContext) -> None:
    """Seed the catalog on first start; concurrent replicas race safely (the write lock / unique SKUs)."""

    def work(conn: Connection) -> int:
        if conn.execute(select(func.count()).select_from(products)).scalar_one() > 0:
            return 0
        rows = seed_products()
        conn.execute(insert(products), rows)
        return len(rows)

    assert ctx.db is not None
    try:
        count = await ctx.db.write(work)
    except IntegrityError:
        count = 0
    if count:
        log.info("catalog seeded", extra={"fields": {"event": "seeded", "products": count}})


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "catalog",
        [router, admin.create_routes(product_dict)],
        config=config,
        metadata=metadata,
        on_startup=seed,
        description="Products, search, stock and stock reservations.",
    )
