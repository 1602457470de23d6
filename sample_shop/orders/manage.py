"""orders after checkout: cancelling (refund and stock release, idempotent), the admin's order list and
status changes, and the analytics of the admin console (docs/shop.md, "Order lifecycle").

Cancelling first moves the order `paid -> cancelled` (a conditional update, so a concurrent "shipped"
and a cancel cannot both win), then releases the stock and refunds the charge - both idempotent at
catalog and payment - and records the refund. A cancel call that finds the order cancelled but not yet
refunded (a dependency was down) finishes the job, so repeating a cancel is always safe.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sample_shop.basics import utc_iso
from sample_shop.kit.app import AuthenticatedUser, ServiceContext, get_context, require_admin, require_user
from sample_shop.kit.errors import ShopError, UpstreamError
from sample_shop.kit.wire import StatusChange
from sample_shop.orders import lifecycle, store
from sample_shop.orders.lifecycle import CANCELLED, DELIVERED, PAID, SHIPPED, TransitionRefused
from sample_shop.orders.models import order_items, order_refunds, orders

log = logging.getLogger("sample_shop.orders")
shopper_router = APIRouter()
admin_router = APIRouter(prefix="/admin")
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]
Admin = Annotated[AuthenticatedUser, Depends(require_admin)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
SOLD = (PAID, SHIPPED, DELIVERED)  # orders whose money the shop keeps (analytics)
MAX_ANALYTICS_MINUTES = 24 * 60


def _refused(exc: TransitionRefused) -> ShopError:
    return ShopError(409, exc.code, exc.message)


async def cancel_order(ctx: ServiceContext, order_id: str, actor: str, user_id: int | None) -> dict[str, Any]:
    """Cancel (or finish cancelling) one order; its detail. `user_id` limits it to that user's orders."""
    assert ctx.db is not None

    def mark(conn: Connection) -> Any:
        where = orders.c.id == order_id
        if user_id is not None:
            where = where & (orders.c.user_id == user_id)
        row = conn.execute(select(orders).where(where)).first()
        if row is None:
            return None
        if row.status != CANCELLED:
            lifecycle.check_managed(order_id, row.status, CANCELLED)
            store.change_status(conn, order_id, row.status, CANCELLED, actor)
        return conn.execute(select(orders).where(orders.c.id == order_id)).one()

    try:
        row = await ctx.db.write(mark)
    except TransitionRefused as exc:
        raise _refused(exc) from None
    if row is None:
        raise ShopError(404, "not_found", f"order {order_id} does not exist for this user")
    if await ctx.db.read(lambda conn: store.refund_of(conn, order_id)) is None:
        await _refund(ctx, row)
    found = await ctx.db.read(lambda conn: store.detail(conn, order_id))
    assert found is not None
    return found


async def _refund(ctx: ServiceContext, row: Any) -> None:
    """Give the stock back and the money back, then record the refund (each step idempotent)."""
    assert ctx.client is not None and ctx.db is not None
    retry = "the order is cancelled but {what} did not go through yet; cancel again to finish it"
    try:
        released = await ctx.client.request(
            "catalog",
            "DELETE",
            f"/reservations/{row.id}:{row.attempt}",
            route="/reservations/{reservation_id}",
        )
        refunded = None
        if released.ok:
            refunded = await ctx.client.request(
                "payment",
                "POST",
                "/refunds",
                idempotency_key=f"refund-{row.id}",
                route="/refunds",
                json_body={"order_id": row.id, "charge_id": row.charge_id, "amount_cents": row.total_cents},
            )
    except UpstreamError as exc:
        raise ShopError(
            503, "refund_pending", retry.format(what="the refund") + f" ({exc})", headers={"Retry-After": "1"}
        ) from None
    if not released.ok:
        raise ShopError(
            503, "refund_pending", retry.format(what=f"releasing the stock (catalog {released.status})")
        )
    if refunded is None or not refunded.ok:
        status = refunded.status if refunded is not None else "-"
        raise ShopError(503, "refund_pending", retry.format(what=f"the refund (payment {status})"))
    refund = refunded.json() or {}

    def record(conn: Connection) -> None:
        conn.execute(
            insert(order_refunds).values(
                order_id=row.id,
                refund_id=str(refund.get("refund_id")),
                amount_cents=row.total_cents,
                at=store.now_iso(),
            )
        )

    try:
        await ctx.db.write(record)
    except IntegrityError:  # a concurrent cancel recorded the same (deterministic) refund first
        return
    ctx.metrics.count_order("cancelled")
    log.info(
        "order cancelled and refunded",
        extra={
            "fields": {"event": "order_cancelled", "order_id": row.id, "refund_id": refund.get("refund_id")}
        },
    )


@shopper_router.post("/orders/{order_id}/cancel", summary="cancel an order that has not shipped (idempotent)")
async def cancel(ctx: Ctx, user: User, order_id: OrderId) -> JSONResponse:
    return JSONResponse(await cancel_order(ctx, order_id, f"shopper:{user.id}", user.id))


@admin_router.get("/orders", summary="all orders, newest first, filtered by status and user")
async def admin_list(
    ctx: Ctx,
    _admin: Admin,
    status: Annotated[str | None, Query(max_length=16)] = None,
    user: Annotated[int | None, Query(ge=1, le=2_147_483_647, description="user id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    if status is not None and status not in lifecycle.STATUSES:
        raise ShopError(
            422,
            "invalid_status",
            f"status={status!r}: one of {', '.join(lifecycle.STATUSES)}",
            field="status",
        )

    def work(conn: Connection) -> dict[str, Any]:
        where = []
        if status is not None:
            where.append(orders.c.status == status)
        if user is not None:
            where.append(orders.c.user_id == user)
        return store.listing(conn, where, limit, offset)

    assert ctx.db is not None
    return JSONResponse(await ctx.db.read(work))


@admin_router.get("/orders/{order_id}", summary="any order, with its history")
async def admin_get(ctx: Ctx, _admin: Admin, order_id: OrderId) -> JSONResponse:
    assert ctx.db is not None
    found = await ctx.db.read(lambda conn: store.detail(conn, order_id))
    if found is None:
        raise ShopError(404, "not_found", f"order {order_id} does not exist")
    return JSONResponse(found)


@admin_router.post("/orders/{order_id}/status", summary="advance an order: shipped, delivered or cancelled")
async def admin_set_status(ctx: Ctx, admin: Admin, order_id: OrderId, body: StatusChange) -> JSONResponse:
    wanted = body.status
    if wanted not in lifecycle.SETTABLE_BY_ADMIN:
        raise ShopError(
            422,
            "invalid_status",
            f"status {wanted!r} cannot be set; one of {', '.join(lifecycle.SETTABLE_BY_ADMIN)}",
            field="status",
        )
    actor = f"admin:{admin.id}"
    if wanted == CANCELLED:
        return JSONResponse(await cancel_order(ctx, order_id, actor, None))

    def work(conn: Connection) -> bool:
        current = conn.execute(select(orders.c.status).where(orders.c.id == order_id)).scalar_one_or_none()
        if current is None:
            return False
        if current != wanted:  # asking again for the status the order has is answered, not refused
            lifecycle.check_managed(order_id, current, wanted)
            store.change_status(conn, order_id, current, wanted, actor)
        return True

    assert ctx.db is not None
    try:
        exists = await ctx.db.write(work)
    except TransitionRefused as exc:
        raise _refused(exc) from None
    if not exists:
        raise ShopError(404, "not_found", f"order {order_id} does not exist")
    log.info(
        "order status set",
        extra={"fields": {"event": "order_status", "order_id": order_id, "status": wanted}},
    )
    return JSONResponse(await ctx.db.read(lambda conn: store.detail(conn, order_id)))


@admin_router.post("/orders/{order_id}/cancel", summary="cancel any order that has not shipped, with refund")
async def admin_cancel(ctx: Ctx, admin: Admin, order_id: OrderId) -> JSONResponse:
    return JSONResponse(await cancel_order(ctx, order_id, f"admin:{admin.id}", None))


def minutes_of(start_s: float, minutes: int) -> list[str]:
    """The minute labels ('2026-12-07T13:05Z') of the `minutes` whole minutes from start_s on."""
    first = int(start_s // 60) * 60
    return [utc_iso(first + 60 * i, "seconds")[:16] + "Z" for i in range(minutes)]


@admin_router.get("/analytics", summary="orders and revenue per minute, top products")
async def analytics(
    ctx: Ctx,
    _admin: Admin,
    minutes: Annotated[int, Query(ge=1, le=MAX_ANALYTICS_MINUTES)] = 60,
    top: Annotated[int, Query(ge=1, le=50)] = 5,
) -> JSONResponse:
    labels = minutes_of(time.time() - 60 * (minutes - 1), minutes)
    since = labels[0][:16]  # created_at is ISO text, so text order is time order

    def work(conn: Connection) -> dict[str, Any]:
        minute = func.substr(orders.c.created_at, 1, 16)
        sold = orders.c.status.in_(SOLD)
        per_minute = {
            r.minute + "Z": (r.orders, r.revenue)
            for r in conn.execute(
                select(
                    minute.label("minute"),
                    func.count().label("orders"),
                    func.coalesce(func.sum(orders.c.total_cents), 0).label("revenue"),
                )
                .where(sold, orders.c.created_at >= since)
                .group_by(minute)
            ).all()
        }
        quantity = func.sum(order_items.c.quantity)
        tops = conn.execute(
            select(
                order_items.c.product_id,
                func.max(order_items.c.name).label("name"),
                quantity.label("quantity"),
                func.sum(order_items.c.quantity * order_items.c.unit_price_cents).label("revenue"),
            )
            .join(orders, orders.c.id == order_items.c.order_id)
            .where(sold, orders.c.created_at >= since)
            .group_by(order_items.c.product_id)
            .order_by(quantity.desc(), order_items.c.product_id)
            .limit(top)
        ).all()
        return {
            "minutes": minutes,
            "currency": "EUR",
            "orders_per_minute": [
                {
                    "minute": label,
                    "orders": int(per_minute.get(label, (0, 0))[0]),
                    "revenue": int(per_minute.get(label, (0, 0))[1]),  # cents of `currency`
                }
                for label in labels
            ],
            "top_products": [
                {
                    "product_id": t.product_id,
                    "name": t.name,
                    "quantity": int(t.quantity),
                    "revenue_cents": int(t.revenue),
                }
                for t in tops
            ],
        }

    assert ctx.db is not None
    return JSONResponse(await ctx.db.read(work))
