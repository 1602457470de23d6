"""The transactional outbox of orders (docs/shop.md, "The asynchronous path").

`emit` is called by `store.record_change`, inside the transaction of every status change, so an event row
exists if and only if its change committed: no event for a rolled-back change, no change without its
event. Consumers (sample_shop/notifications) reach the rows through the internal routes below, protected
by the stack's service token like catalog's reservations:

- `POST /outbox/claim` hands out up to `limit` events with a lease of `lease_s`: pending rows, and leased
  rows whose lease ran out (their consumer died). Every claim counts as an attempt; a row claimed
  MAX_ATTEMPTS times without an acknowledgement is `parked` (a poison event) and handed out no more.
- `POST /outbox/ack` marks events `done`; `POST /outbox/fail` gives one back: pending again after a retry
  delay (0.5 s doubling up to 30 s, kept in `lease_until`), or parked once its attempts are spent.
- `GET /outbox/backlog` counts the rows per state and the age of the oldest undelivered one: what the
  function runner polls to scale the consumers from zero.

Delivery is at-least-once: a consumer that dies after sending but before `ack` gets the event again after
its lease; it de-duplicates by `event_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection

from sample_shop import topology
from sample_shop.basics import utc_iso
from sample_shop.kit.app import ServiceContext, get_context, require_service
from sample_shop.kit.errors import ShopError
from sample_shop.kit.metrics import build_metric
from sample_shop.kit.telemetry import SCOPE_NAME, format_traceparent
from sample_shop.orders import lifecycle
from sample_shop.orders.models import order_contacts, orders, outbox

# The status changes a shopper hears about, and the event type each one writes.
EVENT_TYPES: Final[dict[str, str]] = {
    lifecycle.PAID: "order.paid",
    lifecycle.SHIPPED: "order.shipped",
    lifecycle.DELIVERED: "order.delivered",
    lifecycle.CANCELLED: "order.cancelled",
}
STATES: Final = ("pending", "leased", "done", "parked")
MAX_ATTEMPTS: Final = 5  # claims without an acknowledgement before an event is parked
MAX_LEASE_S: Final = 300.0
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 30.0

log = logging.getLogger("sample_shop.orders")
router = APIRouter(prefix="/outbox", dependencies=[Depends(require_service)])
Ctx = Annotated[ServiceContext, Depends(get_context)]


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (the event's producer span, a child of the change's
    request), or None without one."""
    context = trace.get_current_span().get_span_context()
    return format_traceparent(context) if context.is_valid else None


def emit(conn: Connection, order_id: str, from_status: str | None, to_status: str) -> str | None:
    """Write the outbox row of a status change in the caller's transaction; its event id, or None when the
    change is not one shoppers are told about (pending, failed)."""
    kind = EVENT_TYPES.get(to_status)
    if kind is None:
        return None
    row = conn.execute(select(orders).where(orders.c.id == order_id)).one()
    email = conn.execute(
        select(order_contacts.c.email).where(order_contacts.c.order_id == order_id)
    ).scalar_one_or_none()
    now = time.time()
    event_id = str(uuid.uuid4())
    payload = {
        "order_id": order_id,
        "user_id": row.user_id,
        "email": email,
        "from": from_status,
        "status": to_status,
        "total_cents": row.total_cents,
        "currency": row.currency,
    }
    # The producer span of the event (OpenTelemetry messaging conventions): its context is the one stored
    # with the row, so the consumer's span is its child and the trace shows the hop through the outbox.
    with trace.get_tracer(SCOPE_NAME).start_as_current_span(
        f"outbox publish {kind}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "outbox",
            "messaging.operation": "publish",
            "messaging.destination.name": "outbox",
            "messaging.message.id": event_id,
            "shop.order_id": order_id,
        },
    ):
        conn.execute(
            outbox.insert().values(
                event_id=event_id,
                order_id=order_id,
                type=kind,
                payload=json.dumps(payload, sort_keys=True),
                traceparent=current_traceparent(),
                created_at=utc_iso(now),
                created_s=now,
                attempts=0,
                state="pending",
            )
        )
    return event_id


def event_dict(row: Any) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "order_id": row.order_id,
        "type": row.type,
        "payload": json.loads(row.payload),
        "traceparent": row.traceparent,
        "created_at": row.created_at,
        "created_s": row.created_s,
        "attempts": row.attempts,
        "state": row.state,
    }


def retry_delay_s(attempts: int) -> float:
    """The wait before an event given back after `attempts` claims is handed out again: 0.5 s, doubling,
    at most 30 s (a failing SMTP server is not hammered; a poison event is parked within seconds)."""
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** max(0, attempts - 1))


def _claimable(now: float) -> Any:
    """Pending (and past its retry delay, kept in lease_until), or leased with an expired lease."""
    waited = or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now)
    return or_(
        and_(outbox.c.state == "pending", waited),
        and_(outbox.c.state == "leased", outbox.c.lease_until < now),
    )


def claim(conn: Connection, consumer: str, limit: int, lease_s: float, now: float) -> list[dict[str, Any]]:
    """Lease up to `limit` events to `consumer`, oldest first; spent ones are parked first."""
    conn.execute(
        update(outbox)
        .where(_claimable(now), outbox.c.attempts >= MAX_ATTEMPTS)
        .values(
            state="parked",
            lease_owner=None,
            lease_until=None,
            last_error=func.coalesce(outbox.c.last_error, "no acknowledgement")
            + f" (parked after {MAX_ATTEMPTS} attempts)",
        )
    )
    ids = list(
        conn.execute(
            select(outbox.c.event_id)
            .where(_claimable(now))
            .order_by(outbox.c.created_s, outbox.c.event_id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE serialises claims
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        update(outbox)
        .where(outbox.c.event_id.in_(ids))
        .values(
            state="leased", lease_owner=consumer, lease_until=now + lease_s, attempts=outbox.c.attempts + 1
        )
    )
    rows = conn.execute(
        select(outbox).where(outbox.c.event_id.in_(ids)).order_by(outbox.c.created_s, outbox.c.event_id)
    ).all()
    return [event_dict(r) for r in rows]


def ack(conn: Connection, event_ids: list[str]) -> list[tuple[str, float]]:
    """Mark events delivered (any consumer's acknowledgement counts: the event was sent); the (type,
    created_s) of each one this call changed (a repeated ack changes nothing)."""
    undelivered = (outbox.c.event_id.in_(event_ids), outbox.c.state.in_(("pending", "leased")))
    changed = [(r.type, r.created_s) for r in conn.execute(select(outbox).where(*undelivered)).all()]
    conn.execute(
        update(outbox)
        .where(*undelivered)
        .values(state="done", lease_owner=None, lease_until=None, done_at=utc_iso(time.time()))
    )
    return changed


def fail(conn: Connection, event_id: str, error: str) -> str | None:
    """Give an event back after a failed delivery: pending again, or parked once its attempts are spent.
    Its new state, or None when it is not leased (unknown, done or parked)."""
    row = conn.execute(select(outbox).where(outbox.c.event_id == event_id)).first()
    if row is None or row.state != "leased":
        return None
    state = "parked" if row.attempts >= MAX_ATTEMPTS else "pending"
    retry_at = None if state == "parked" else time.time() + retry_delay_s(row.attempts)
    conn.execute(
        update(outbox)
        .where(outbox.c.event_id == event_id)
        .values(state=state, lease_owner=None, lease_until=retry_at, last_error=error[:2000])
    )
    return state


def backlog(conn: Connection, now: float) -> dict[str, Any]:
    """Rows per state, the undelivered count (pending + leased) and the oldest undelivered one's age."""
    counts = {state: 0 for state in STATES}
    for state, count in conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all():
        counts[state] = int(count)
    oldest = conn.execute(
        select(func.min(outbox.c.created_s)).where(outbox.c.state.in_(("pending", "leased")))
    ).scalar_one_or_none()
    return {
        "states": counts,
        "undelivered": counts["pending"] + counts["leased"],
        "oldest_undelivered_age_s": None if oldest is None else round(max(0.0, now - oldest), 3),
        "max_attempts": MAX_ATTEMPTS,
    }


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consumer: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    limit: int = Field(default=10, ge=1, le=100)
    lease_s: float = Field(default=30.0, gt=0, le=MAX_LEASE_S)


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(min_length=1, max_length=100)
    sent_s: float | None = Field(default=None, gt=0, description="unix time the e-mail was accepted")


class OutboxMetrics:
    """The asynchronous path's metrics, exported by orders: the backlog per state (refreshed every
    second and on every claim/ack) and the notification latency of each first acknowledgement."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.backlog = build_metric(topology.NOTIFICATION_BACKLOG, ctx.metrics.registry)
        self.latency = build_metric(topology.NOTIFICATION_LATENCY, ctx.metrics.registry)

    def observe(self, delivered: list[tuple[str, float]], sent_s: float) -> None:
        for kind, created_s in delivered:
            self.latency.labels(self.ctx.config.service, kind).observe(max(0.0, sent_s - created_s))

    async def refresh(self) -> dict[str, Any]:
        assert self.ctx.db is not None
        now = time.time()
        counts = await self.ctx.db.read(lambda conn: backlog(conn, now))
        for state in STATES:
            if state != "done":
                self.backlog.labels(self.ctx.config.service, state).set(counts["states"][state])
        return counts

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a locked or faulted database: the gauge keeps its last value
                log.warning("could not count the outbox backlog", exc_info=True)
            await asyncio.sleep(interval_s)


async def start_metrics(ctx: ServiceContext) -> None:
    """orders' startup: the outbox metrics and their refresh task."""
    metrics = OutboxMetrics(ctx)
    ctx.state["outbox_metrics"] = metrics
    ctx.state["outbox_metrics_task"] = asyncio.get_running_loop().create_task(metrics.run())


def _metrics(ctx: ServiceContext) -> OutboxMetrics | None:
    found = ctx.state.get("outbox_metrics")
    return found if isinstance(found, OutboxMetrics) else None


class FailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=36)
    error: str = Field(min_length=1, max_length=2000)


@router.post("/claim", summary="lease pending order events to a consumer (internal)")
async def claim_route(ctx: Ctx, body: ClaimRequest) -> JSONResponse:
    assert ctx.db is not None
    now = time.time()
    events = await ctx.db.write(lambda conn: claim(conn, body.consumer, body.limit, body.lease_s, now))
    return JSONResponse({"events": events, "lease_until": now + body.lease_s})


@router.post("/ack", summary="mark order events delivered (internal)")
async def ack_route(ctx: Ctx, body: AckRequest) -> JSONResponse:
    assert ctx.db is not None
    delivered = await ctx.db.write(lambda conn: ack(conn, body.event_ids))
    metrics = _metrics(ctx)
    if metrics is not None:
        metrics.observe(delivered, body.sent_s or time.time())
    return JSONResponse({"acknowledged": len(delivered)})


@router.post("/fail", summary="give an order event back after a failed delivery (internal)")
async def fail_route(ctx: Ctx, body: FailRequest) -> JSONResponse:
    assert ctx.db is not None
    state = await ctx.db.write(lambda conn: fail(conn, body.event_id, body.error))
    if state is None:
        raise ShopError(409, "not_leased", f"event {body.event_id} is not leased (unknown, done or parked)")
    return JSONResponse({"event_id": body.event_id, "state": state})


@router.get("/backlog", summary="order events per state, and the oldest undelivered one's age (internal)")
async def backlog_route(ctx: Ctx) -> JSONResponse:
    assert ctx.db is not None
    metrics = _metrics(ctx)
    if metrics is not None:  # the gauge is as fresh as the answer
        return JSONResponse(await metrics.refresh())
    now = time.time()
    return JSONResponse(await ctx.db.read(lambda conn: backlog(conn, now)))


@router.get("/events", summary="order events, newest first, by state (internal; tests and experiments)")
async def events_route(ctx: Ctx, state: str | None = None, limit: int = 100) -> JSONResponse:
    if state is not None and state not in STATES:
        raise ShopError(422, "invalid_state", f"state={state!r}: one of {', '.join(STATES)}", field="state")
    if not 1 <= limit <= 1000:
        raise ShopError(422, "invalid_limit", f"limit={limit}: between 1 and 1000", field="limit")

    def work(conn: Connection) -> list[dict[str, Any]]:
        query = select(outbox).order_by(outbox.c.created_s.desc()).limit(limit)
        if state is not None:
            query = query.where(outbox.c.state == state)
        return [{**event_dict(r), "last_error": r.last_error} for r in conn.execute(query).all()]

    assert ctx.db is not None
    return JSONResponse({"events": await ctx.db.read(work)})
