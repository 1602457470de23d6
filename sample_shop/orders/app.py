"""orders: the idempotent checkout saga and the order history.

Checkout (docs/shop.md, "Checkout semantics"): claim the Idempotency-Key (unique per user) as a `pending`
order, take the order's lease, snapshot the cart, reserve stock (reservation id `<order>:<attempt>`),
charge payment (keyed by the order id), clear the cart, mark `paid`. A failing step compensates
(releases the reservation) and records the failure; transient failures leave the order retryable with the
same key. Every step is idempotent, so a `pending` order left by a killed process is resumed, never
duplicated; a restarted replica frees the leases of its previous life at start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import and_, case, insert, or_, select, update
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
from sample_shop.orders import outbox, store
from sample_shop.orders.lifecycle import FAILED, PAID, PENDING
from sample_shop.orders.manage import admin_router, shopper_router
from sample_shop.orders.models import metadata, order_contacts, order_items, order_requests, orders
from sample_shop.orders.store import change_status, items_of, load, now_iso, order_dict, record_change

log = logging.getLogger("sample_shop.orders")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]
CURRENCY = "EUR"
ACTOR = "checkout"  # the actor of the saga's status changes in the order history


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


def request_digest(request: CheckoutRequest, secret: str) -> str:
    """HMAC-SHA256 of the request's canonical JSON, keyed so the stored digest reveals no card number."""
    canonical = json.dumps(request.model_dump(), sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Reservation:
    """catalog's answer to a reservation: the order's total and each line's current name and price."""

    total_cents: int
    lines: list[dict[str, Any]]


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
        self.digest = request_digest(request, ctx.config.jwt_secret)
        self.owner: str = ctx.state["lease_owner"]

    def lease_s(self) -> float:
        # Longer than the worst case of the saga's three calls with every retry, so a live saga never loses
        # its lease to a concurrent retry; a dead one's lease is freed when its replica restarts.
        policy = self.ctx.policies.current()
        return max(10.0, 4 * (policy.retries + 1) * (policy.timeout_s + policy.backoff_max_s) + 5)

    async def run(self) -> JSONResponse:
        row, created = await self._claim()
        if not created:
            await self._check_same_request(row.id)
            if row.status == PAID:
                items = await self.db.read(lambda c: items_of(c, row.id))
                self.ctx.metrics.count_order("replayed")
                return JSONResponse(order_dict(row, items), headers={"Idempotent-Replayed": "true"})
            if row.status == FAILED and not row.retryable:
                items = await self.db.read(lambda c: items_of(c, row.id))
                return _failure_response(row, items, replayed=True)
        acquired, row = await self._acquire_lease(row.id)
        if not acquired:
            items = await self.db.read(lambda c: items_of(c, row.id))
            if row.status == PAID:
                return JSONResponse(order_dict(row, items), headers={"Idempotent-Replayed": "true"})
            if row.status == FAILED and not row.retryable:
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
            now = now_iso()
            order_id = str(uuid.uuid4())
            conn.execute(
                insert(orders).values(
                    id=order_id,
                    user_id=self.user.id,
                    idempotency_key=self.key,
                    status=PENDING,
                    attempt=1,
                    items_ready=False,
                    currency=CURRENCY,
                    retryable=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            if self.user.claims.email:  # where the order's e-mails go (the outbox events carry it)
                conn.execute(insert(order_contacts).values(order_id=order_id, email=self.user.claims.email))
            record_change(conn, order_id, None, PENDING, ACTOR)
            conn.execute(insert(order_requests).values(order_id=order_id, body_digest=self.digest))
            return conn.execute(select(orders).where(orders.c.id == order_id)).one(), True

        try:
            return await self.db.write(work)
        except IntegrityError:  # a concurrent request with the same key claimed it first
            return await self.db.write(work)

    async def _check_same_request(self, order_id: str) -> None:
        """A retry must repeat the first request: the same key with another body is refused."""
        stored = await self.db.read(
            lambda c: c.execute(
                select(order_requests.c.body_digest).where(order_requests.c.order_id == order_id)
            ).scalar_one_or_none()
        )
        if stored is not None and not hmac.compare_digest(stored, self.digest):
            raise ShopError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body; a retry must "
                "send the same body, a new checkout needs a new Idempotency-Key",
                order_id=order_id,
            )

    async def _acquire_lease(self, order_id: str) -> tuple[bool, Any]:
        lease_until = time.time() + self.lease_s()

        def work(conn: Connection) -> tuple[bool, Any]:
            now = time.time()
            before = conn.execute(select(orders.c.status).where(orders.c.id == order_id)).scalar_one()
            taken = conn.execute(
                update(orders)
                .where(
                    orders.c.id == order_id,
                    or_(orders.c.status == PENDING, and_(orders.c.status == FAILED, orders.c.retryable)),
                    or_(orders.c.lease_until.is_(None), orders.c.lease_until < now),
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=lease_until,
                    status=PENDING,
                    attempt=case((orders.c.status == FAILED, orders.c.attempt + 1), else_=orders.c.attempt),
                    failure_error=None,
                    failure_message=None,
                    failure_status=None,
                    failure_extra=None,
                    retryable=False,
                    updated_at=now_iso(),
                )
            ).rowcount
            if taken == 1 and before == FAILED:  # a retry with the same key runs the saga again
                record_change(conn, order_id, FAILED, PENDING, ACTOR)
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
            change_status(
                conn,
                row.id,
                PENDING,
                FAILED,
                ACTOR,
                failure_error=error,
                failure_message=message,
                failure_status=status,
                failure_extra=json.dumps(extra) if extra else None,
                retryable=retryable,
                lease_owner=None,
                lease_until=None,
            )
            return load(conn, row.id)

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
        """The saga's steps in order; each returns the failure answer (compensated) or its result."""
        log.info(
            "checkout started",
            extra={
                "fields": {
                    "event": "checkout_started",
                    "order_id": row.id,
                    "attempt": row.attempt,
                    "user_id": self.user.id,
                }
            },
        )
        if not row.items_ready:
            failed = await self._snapshot_cart(row)
            if failed is not None:
                return failed
        items = await self.db.read(lambda c: items_of(c, row.id))
        reservation_id = f"{row.id}:{row.attempt}"
        reserved = await self._reserve(row, items, reservation_id)
        if isinstance(reserved, JSONResponse):
            return reserved
        charge = await self._charge(row, reserved, reservation_id)
        if isinstance(charge, JSONResponse):
            return charge
        await self._clear_cart(row.id)
        return await self._complete(row.id, charge, reserved)

    async def _snapshot_cart(self, row: Any) -> JSONResponse | None:
        """Step 1: copy the cart into the order's lines (once per order); None when done."""
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
                        "order_id": row.id,
                        "product_id": line["product_id"],
                        "name": line["name"],
                        "quantity": line["quantity"],
                        "unit_price_cents": line["unit_price_cents"],
                    }
                    for line in lines
                ],
            )
            conn.execute(update(orders).where(orders.c.id == row.id).values(items_ready=True))

        await self.db.write(snapshot)
        return None

    async def _reserve(self, row: Any, items: list[Any], reservation_id: str) -> JSONResponse | Reservation:
        """Step 2: reserve the stock (idempotent per attempt) and take catalog's prices."""
        try:
            reserved = await self.client.request(
                "catalog",
                "POST",
                "/reservations",
                idempotency_key=reservation_id,
                route="/reservations",
                json_body={
                    "reservation_id": reservation_id,
                    "order_id": row.id,
                    "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in items],
                },
            )
        except UpstreamError as exc:  # the reservation may have been applied: release it to be sure
            return await self._fail(
                row, 503, "dependency_unavailable", f"catalog: {exc}", retryable=True, release=reservation_id
            )
        if not reserved.ok:
            return await self._reserve_failed(row, reserved, reservation_id)
        body = reserved.json()
        reservation = Reservation(total_cents=int(body["total_cents"]), lines=body["items"])

        def price(conn: Connection) -> None:
            for line in reservation.lines:
                conn.execute(
                    update(order_items)
                    .where(order_items.c.order_id == row.id, order_items.c.product_id == line["product_id"])
                    .values(unit_price_cents=line["unit_price_cents"], name=line["name"])
                )
            conn.execute(
                update(orders).where(orders.c.id == row.id).values(total_cents=reservation.total_cents)
            )

        await self.db.write(price)
        return reservation

    async def _charge(
        self, row: Any, reservation: Reservation, reservation_id: str
    ) -> JSONResponse | dict[str, Any]:
        """Step 3: charge the card (idempotent per order id); the charge, or the compensated failure."""
        try:
            charged = await self.client.request(
                "payment",
                "POST",
                "/charges",
                idempotency_key=row.id,
                route="/charges",
                json_body={
                    "order_id": row.id,
                    "amount_cents": reservation.total_cents,
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
        charge: dict[str, Any] = charged.json()
        return charge

    async def _clear_cart(self, order_id: str) -> None:
        """Step 4: empty the cart; a failure here leaves a stale cart, not a wrong order."""
        try:
            cleared = await self.client.request(
                "cart", "DELETE", "/cart", token=self.user.token, route="/cart"
            )
            if not cleared.ok:
                log.warning("paid order %s: clearing the cart answered HTTP %s", order_id, cleared.status)
        except UpstreamError as exc:
            log.warning("paid order %s: could not clear the cart: %s", order_id, exc)

    async def _complete(
        self, order_id: str, charge: dict[str, Any], reservation: Reservation
    ) -> JSONResponse:
        """Step 5: the order is paid (and its history says so)."""

        def complete(conn: Connection) -> tuple[Any, list[Any]]:
            change_status(
                conn,
                order_id,
                PENDING,
                PAID,
                ACTOR,
                charge_id=charge["charge_id"],
                card_last4=charge["card_last4"],
                total_cents=reservation.total_cents,
                lease_owner=None,
                lease_until=None,
            )
            return load(conn, order_id)

        done, done_items = await self.db.write(complete)
        self.ctx.metrics.count_order("completed")
        log.info(
            "order paid",
            extra={
                "fields": {
                    "event": "order_completed",
                    "order_id": order_id,
                    "total_cents": reservation.total_cents,
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
        return store.listing(conn, [orders.c.user_id == user.id], limit, offset)

    assert ctx.db is not None
    return JSONResponse(await ctx.db.read(work))


@router.get("/orders/{order_id}", summary="one of the user's orders, with its history")
async def get_order(
    ctx: Ctx, user: User, order_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> JSONResponse:
    assert ctx.db is not None
    found = await ctx.db.read(lambda conn: store.detail(conn, order_id, user.id))
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


async def start(ctx: ServiceContext) -> None:
    await free_stale_leases(ctx)
    await outbox.start_metrics(ctx)


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "orders",
        [router, shopper_router, admin_router, outbox.router],
        config=config,
        metadata=metadata,
        on_startup=start,
        description="Idempotent checkout saga, order history and lifecycle, cancellation, admin.",
    )
