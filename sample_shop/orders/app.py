"""orders: the idempotent checkout saga and the order history.

Checkout (docs/shop.md, "Checkout semantics"): claim the Idempotency-Key (unique per user) as a `pending`
order, take the order's lease, snapshot the cart, reserve stock (reservation id `<order>:<attempt>`),
charge payment (keyed by the order id), clear the cart, mark `completed`. A failing step compensates
(releases the reservation) and records the failure; transient failures leave the order retryable with the
same key. Every step is idempotent, so a `pending` order left by a killed process is resumed, never
duplicated; a restarted replica frees the leases of its previous life at start.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

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
from sample_shop.kit.wire import CheckoutRequest, IdempotencyKey
from sample_shop.orders.models import metadata, order_items, orders

log = logging.getLogger("sample_shop.orders")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]
CURRENCY = "EUR"
FINAL_STATUSES = ("completed", "failed")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_dict(row: Any, items: list[Any]) -> dict[str, Any]:
    failure = None
    if row.status == "failed" and row.failure_error:
        failure = {
            "error": row.failure_error,
            "message": row.failure_message,
            "retryable": bool(row.retryable),
        }
    return {
        "id": row.id,
        "status": row.status,
        "items": [
            {
                "product_id": i.product_id,
                "name": i.name,
                "quantity": i.quantity,
                "unit_price_cents": i.unit_price_cents,
            }
            for i in items
        ],
        "total_cents": row.total_cents,
        "currency": row.currency,
        "charge_id": row.charge_id,
        "card_last4": row.card_last4,
        "failure": failure,
        "idempotency_key": row.idempotency_key,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _items(conn: Connection, order_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.product_id)
        ).all()
    )


def _load(conn: Connection, order_id: str) -> tuple[Any, list[Any]]:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).one()
    return row, _items(conn, order_id)


def _failure_response(row: Any, items: list[Any], replayed: bool) -> JSONResponse:
    extra = json.loads(row.failure_extra) if row.failure_extra else {}
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if row.failure_status in (503, 409) and row.retryable:
        headers["Retry-After"] = "1"
    return JSONResponse(
        {
            "error": row.failure_error,
            "message": row.failure_message,
            "order_id": row.id,
            **extra,
            "order": order_dict(row, items),
        },
        status_code=row.failure_status or 500,
        headers=headers,
    )


class Saga:
    """One checkout request: runs (or resumes) the saga of one order while holding its lease."""

    def __init__(
        self, ctx: ServiceContext, user: AuthenticatedUser, key: str, request: CheckoutRequest
    ) -> None:
        assert ctx.db is not None and ctx.client is not None
        self.ctx = ctx
        self.db = ctx.db
        self.client = ctx.client
        self.user = user
        self.key = key
        self.card = request.card
        self.owner: str = ctx.state["lease_owner"]

    def lease_s(self) -> float:
        # Longer than the worst case of the saga's three calls with every retry, so a live saga never loses
        # its lease to a concurrent retry; a dead one's lease is freed when its replica restarts.
        policy = self.ctx.policies.current()
        return max(10.0, 4 * (policy.retries + 1) * (policy.timeout_s + policy.backoff_max_s) + 5)

    async def run(self) -> JSONResponse:
        row, created = await self._claim()
        if not created:
            if row.status == "completed":
                items = await self.db.read(lambda c: _items(c, row.id))
                self.ctx.metrics.count_order("replayed")
                return JSONResponse(order_dict(row, items), headers={"Idempotent-Replayed": "true"})
            if row.status == "failed" and not row.retryable:
                items = await self.db.read(lambda c: _items(c, row.id))
                return _failure_response(row, items, replayed=True)
        acquired, row = await self._acquire_lease(row.id)
        if not acquired:
            items = await self.db.read(lambda c: _items(c, row.id))
            if row.status == "completed":
                return JSONResponse(order_dict(row, items), headers={"Idempotent-Replayed": "true"})
            if row.status == "failed" and not row.retryable:
                return _failure_response(row, items, replayed=True)
            raise ShopError(
                409,
                "checkout_in_progress",
                f"order {row.id} is being checked out by another "
                "request; retry with the same Idempotency-Key",
                headers={"Retry-After": "1"},
                order_id=row.id,
            )
        try:
            return await self._steps(row)
        finally:
            await self._release_lease(row.id)

    async def _claim(self) -> tuple[Any, bool]:
        def work(conn: Connection) -> tuple[Any, bool]:
            row = conn.execute(
                select(orders).where(orders.c.user_id == self.user.id, orders.c.idempotency_key == self.key)
            ).first()
            if row is not None:
                return row, False
            now = _now_iso()
            order_id = str(uuid.uuid4())
            conn.execute(
                insert(orders).values(
                    id=order_id,
                    user_id=self.user.id,
                    idempotency_key=self.key,
                    status="pending",
                    attempt=1,
                    items_ready=False,
                    currency=CURRENCY,
                    retryable=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            return conn.execute(select(orders).where(orders.c.id == order_id)).one(), True

        try:
            return await self.db.write(work)
        except IntegrityError:  # a concurrent request with the same key claimed it first
            return await self.db.write(work)

    async def _acquire_lease(self, order_id: str) -> tuple[bool, Any]:
        lease_until = time.time() + self.lease_s()

        def work(conn: Connection) -> tuple[bool, Any]:
            now = time.time()
            taken = conn.execute(
                update(orders)
                .where(
                    orders.c.id == order_id,
                    or_(orders.c.status == "pending", and_(orders.c.status == "failed", orders.c.retryable)),
                    or_(orders.c.lease_until.is_(None), orders.c.lease_until < now),
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=lease_until,
                    status="pending",
                    attempt=case((orders.c.status == "failed", orders.c.attempt + 1), else_=orders.c.attempt),
                    failure_error=None,
                    failure_message=None,
                    failure_status=None,
                    failure_extra=None,
                    retryable=False,
                    updated_at=_now_iso(),
                )
            ).rowcount
            return taken == 1, conn.execute(select(orders).where(orders.c.id == order_id)).one()

        return await self.db.write(work)

    async def _release_lease(self, order_id: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )

        try:
            await self.db.write(work)
        except Exception:  # the lease then times out; a restart of this replica frees it too
            log.warning("could not release the lease of order %s", order_id, exc_info=True)

    async def _fail(
        self,
        row: Any,
        status: int,
        error: str,
        message: str,
        *,
        retryable: bool,
        release: str | None = None,
        **extra: Any,
    ) -> JSONResponse:
        if release is not None:
            await self._release_stock(release)

        def work(conn: Connection) -> tuple[Any, list[Any]]:
            conn.execute(
                update(orders)
                .where(orders.c.id == row.id)
                .values(
                    status="failed",
                    failure_error=error,
                    failure_message=message,
                    failure_status=status,
                    failure_extra=json.dumps(extra) if extra else None,
                    retryable=retryable,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=_now_iso(),
                )
            )
            return _load(conn, row.id)

        failed, items = await self.db.write(work)
        self.ctx.metrics.count_order(error)
        log.warning(
            "checkout failed",
            extra={
                "fields": {
                    "event": "checkout_failed",
                    "order_id": row.id,
                    "error": error,
                    "retryable": retryable,
                }
            },
        )
        return _failure_response(failed, items, replayed=False)

    async def _release_stock(self, reservation_id: str) -> None:
        try:
            response = await self.client.request(
                "catalog", "DELETE", f"/reservations/{reservation_id}", route="/reservations/{reservation_id}"
            )
            if not response.ok:
                log.error("could not release reservation %s: HTTP %s", reservation_id, response.status)
        except UpstreamError as exc:
            log.error("could not release reservation %s: %s", reservation_id, exc)

    async def _steps(self, row: Any) -> JSONResponse:
        order_id = row.id
        log.info(
            "checkout started",
            extra={
                "fields": {
                    "event": "checkout_started",
                    "order_id": order_id,
                    "attempt": row.attempt,
                    "user_id": self.user.id,
                }
            },
        )
        # 1. snapshot the cart (once per order)
        if not row.items_ready:
            try:
                cart = await self.client.request("cart", "GET", "/cart", token=self.user.token, route="/cart")
            except UpstreamError as exc:
                return await self._fail(row, 503, "dependency_unavailable", f"cart: {exc}", retryable=True)
            if not cart.ok:
                return await self._fail(
                    row, 503, "dependency_unavailable", f"cart answered HTTP {cart.status}", retryable=True
                )
            lines = (cart.json() or {}).get("items", [])
            if not lines:
                return await self._fail(
                    row,
                    409,
                    "cart_empty",
                    "the cart is empty; add products first (POST /api/cart/items)",
                    retryable=False,
                )

            def snapshot(conn: Connection) -> None:
                conn.execute(
                    insert(order_items),
                    [
                        {
                            "order_id": order_id,
                            "product_id": line["product_id"],
                            "name": line["name"],
                            "quantity": line["quantity"],
                            "unit_price_cents": line["unit_price_cents"],
                        }
                        for line in lines
                    ],
                )
                conn.execute(update(orders).where(orders.c.id == order_id).values(items_ready=True))

            await self.db.write(snapshot)
        items = await self.db.read(lambda c: _items(c, order_id))

        # 2. reserve stock (idempotent per attempt)
        reservation_id = f"{order_id}:{row.attempt}"
        try:
            reserved = await self.client.request(
                "catalog",
                "POST",
                "/reservations",
                idempotency_key=reservation_id,
                route="/reservations",
                json_body={
                    "reservation_id": reservation_id,
                    "order_id": order_id,
                    "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in items],
                },
            )
        except UpstreamError as exc:  # the reservation may have been applied: release it to be sure
            return await self._fail(
                row, 503, "dependency_unavailable", f"catalog: {exc}", retryable=True, release=reservation_id
            )
        if not reserved.ok:
            return await self._reserve_failed(row, reserved, reservation_id)
        reservation = reserved.json()
        total = int(reservation["total_cents"])

        def price(conn: Connection) -> None:
            for line in reservation["items"]:
                conn.execute(
                    update(order_items)
                    .where(order_items.c.order_id == order_id, order_items.c.product_id == line["product_id"])
                    .values(unit_price_cents=line["unit_price_cents"], name=line["name"])
                )
            conn.execute(update(orders).where(orders.c.id == order_id).values(total_cents=total))

        await self.db.write(price)

        # 3. charge (idempotent per order id)
        try:
            charged = await self.client.request(
                "payment",
                "POST",
                "/charges",
                idempotency_key=order_id,
                route="/charges",
                json_body={
                    "order_id": order_id,
                    "amount_cents": total,
                    "currency": CURRENCY,
                    "card": self.card.model_dump(),
                },
            )
        except UpstreamError as exc:
            return await self._fail(
                row, 503, "payment_unavailable", f"payment: {exc}", retryable=True, release=reservation_id
            )
        if not charged.ok:
            return await self._charge_failed(row, charged, reservation_id)
        charge = charged.json()

        # 4. clear the cart; a failure here leaves a stale cart, not a wrong order
        try:
            cleared = await self.client.request(
                "cart", "DELETE", "/cart", token=self.user.token, route="/cart"
            )
            if not cleared.ok:
                log.warning("paid order %s: clearing the cart answered HTTP %s", order_id, cleared.status)
        except UpstreamError as exc:
            log.warning("paid order %s: could not clear the cart: %s", order_id, exc)

        # 5. complete
        def complete(conn: Connection) -> tuple[Any, list[Any]]:
            conn.execute(
                update(orders)
                .where(orders.c.id == order_id)
                .values(
                    status="completed",
                    charge_id=charge["charge_id"],
                    card_last4=charge["card_last4"],
                    total_cents=total,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=_now_iso(),
                )
            )
            return _load(conn, order_id)

        done, done_items = await self.db.write(complete)
        self.ctx.metrics.count_order("completed")
        log.info(
            "order completed",
            extra={
                "fields": {
                    "event": "order_completed",
                    "order_id": order_id,
                    "total_cents": total,
                    "charge_id": charge["charge_id"],
                }
            },
        )
        return JSONResponse(order_dict(done, done_items), status_code=201)

    async def _reserve_failed(
        self, row: Any, reserved: UpstreamResponse, reservation_id: str
    ) -> JSONResponse:
        body = reserved.json() or {}
        if reserved.status == 409 and body.get("error") == "out_of_stock":
            return await self._fail(
                row,
                409,
                "out_of_stock",
                body.get("message", "out of stock"),
                retryable=False,
                product_ids=body.get("product_ids", []),
            )
        if reserved.status == 404:
            return await self._fail(
                row,
                409,
                "out_of_stock",
                body.get("message", "a product no longer exists"),
                retryable=False,
                product_ids=body.get("product_ids", []),
            )
        return await self._fail(
            row,
            503,
            "dependency_unavailable",
            f"catalog answered HTTP {reserved.status} to the reservation",
            retryable=True,
            release=reservation_id,
        )

    async def _charge_failed(self, row: Any, charged: UpstreamResponse, reservation_id: str) -> JSONResponse:
        body = charged.json() or {}
        if charged.status == 402:
            return await self._fail(
                row,
                402,
                "payment_declined",
                body.get("message", "payment declined"),
                retryable=False,
                release=reservation_id,
                reason=body.get("reason"),
            )
        if charged.status == 422:
            return await self._fail(
                row,
                422,
                "card_invalid",
                body.get("message", "card invalid"),
                retryable=True,
                release=reservation_id,
            )
        if charged.status == 409:
            return await self._fail(
                row,
                409,
                "charge_conflict",
                body.get("message", "charge conflict"),
                retryable=False,
                release=reservation_id,
            )
        return await self._fail(
            row,
            503,
            "payment_unavailable",
            f"payment answered HTTP {charged.status}",
            retryable=True,
            release=reservation_id,
        )


@router.post(
    "/checkout", status_code=201, summary="check the user's cart out (idempotent per Idempotency-Key)"
)
async def checkout(
    ctx: Ctx,
    user: User,
    body: CheckoutRequest,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    return await Saga(ctx, user, idempotency_key, body).run()


@router.get("/orders", summary="the user's orders, newest first")
async def list_orders(
    ctx: Ctx,
    user: User,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JSONResponse:
    def work(conn: Connection) -> dict[str, Any]:
        where = orders.c.user_id == user.id
        total = conn.execute(select(func.count()).select_from(orders).where(where)).scalar_one()
        rows = conn.execute(
            select(orders)
            .where(where)
            .order_by(orders.c.created_at.desc(), orders.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        lines: dict[str, list[Any]] = {r.id: [] for r in rows}
        if rows:
            for item in conn.execute(
                select(order_items)
                .where(order_items.c.order_id.in_(list(lines)))
                .order_by(order_items.c.product_id)
            ).all():
                lines[item.order_id].append(item)
        return {
            "items": [order_dict(r, lines[r.id]) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    assert ctx.db is not None
    return JSONResponse(await ctx.db.read(work))


@router.get("/orders/{order_id}", summary="one of the user's orders")
async def get_order(
    ctx: Ctx, user: User, order_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> JSONResponse:
    def work(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(select(orders).where(orders.c.id == order_id, orders.c.user_id == user.id)).first()
        return None if row is None else order_dict(row, _items(conn, order_id))

    assert ctx.db is not None
    found = await ctx.db.read(work)
    if found is None:
        raise ShopError(404, "not_found", f"order {order_id} does not exist for this user")
    return JSONResponse(found)


async def free_stale_leases(ctx: ServiceContext) -> None:
    """A restarted replica frees the leases its previous life held, so a retry resumes the order at once."""
    replica = ctx.config.replica
    ctx.state["lease_owner"] = f"{replica}:{uuid.uuid4().hex[:8]}"

    def work(conn: Connection) -> int:
        return conn.execute(
            update(orders)
            .where(orders.c.lease_owner.like(f"{replica}:%"))
            .values(lease_owner=None, lease_until=None)
        ).rowcount

    assert ctx.db is not None
    freed = await ctx.db.write(work)
    if freed:
        log.warning(
            "freed the leases of a previous life",
            extra={"fields": {"event": "leases_freed", "orders": freed}},
        )


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "orders",
        [router],
        config=config,
        metadata=metadata,
        on_startup=free_stale_leases,
        description="Idempotent checkout saga and order history.",
    )
