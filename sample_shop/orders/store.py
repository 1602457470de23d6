"""orders' reads and status writes: an order as the API shows it, and the one way a status changes.

`change_status` is a conditional UPDATE (`WHERE status = <from>`) plus the order's history row and its
outbox event (sample_shop/orders/outbox.py), in the caller's transaction, so two concurrent changes of one
order cannot both win and no change goes unrecorded or unannounced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from sample_shop.basics import utc_iso
from sample_shop.orders import outbox
from sample_shop.orders.models import order_events, order_items, order_refunds, orders


def now_iso() -> str:
    return utc_iso(time.time())


def order_dict(
    row: Any, items: Sequence[Any], refund: Any | None = None, history: Sequence[Any] | None = None
) -> dict[str, Any]:
    failure = None
    if row.status == "failed" and row.failure_error:
        failure = {
            "error": row.failure_error,
            "message": row.failure_message,
            "retryable": bool(row.retryable),
        }
    body: dict[str, Any] = {
        "id": row.id,
        "user_id": row.user_id,
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
        "refund": None
        if refund is None
        else {
            "id": refund.refund_id,
            "refund_id": refund.refund_id,
            "amount_cents": refund.amount_cents,
            "at": refund.at,
        },
        "idempotency_key": row.idempotency_key,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if history is not None:
        body["history"] = [
            {"from": e.from_status, "to": e.to_status, "at": e.at, "actor": e.actor} for e in history
        ]
    return body


def items_of(conn: Connection, order_id: str) -> list[Any]:
    return list(
        conn.execute(
            select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.product_id)
        ).all()
    )


def load(conn: Connection, order_id: str) -> tuple[Any, list[Any]]:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).one()
    return row, items_of(conn, order_id)


def refund_of(conn: Connection, order_id: str) -> Any | None:
    return conn.execute(select(order_refunds).where(order_refunds.c.order_id == order_id)).first()


def detail(conn: Connection, order_id: str, user_id: int | None = None) -> dict[str, Any] | None:
    """The order with its items, refund and history; None when it does not exist (for this user)."""
    where = orders.c.id == order_id
    if user_id is not None:
        where = where & (orders.c.user_id == user_id)
    row = conn.execute(select(orders).where(where)).first()
    if row is None:
        return None
    history = conn.execute(
        select(order_events).where(order_events.c.order_id == order_id).order_by(order_events.c.id)
    ).all()
    return order_dict(row, items_of(conn, order_id), refund_of(conn, order_id), history)


def listing(conn: Connection, where: Sequence[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of the orders matching `where`, newest first, with the total: what both the shopper's
    and the admin's order lists answer."""
    total = conn.execute(select(func.count()).select_from(orders).where(*where)).scalar_one()
    rows = conn.execute(
        select(orders)
        .where(*where)
        .order_by(orders.c.created_at.desc(), orders.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return {"items": page(conn, rows), "total": total, "limit": limit, "offset": offset}


def page(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Several orders as the API lists them (items and refund, no history), in two queries."""
    ids = [r.id for r in rows]
    lines: dict[str, list[Any]] = {i: [] for i in ids}
    refunds: dict[str, Any] = {}
    if ids:
        for item in conn.execute(
            select(order_items).where(order_items.c.order_id.in_(ids)).order_by(order_items.c.product_id)
        ).all():
            lines[item.order_id].append(item)
        for refund in conn.execute(select(order_refunds).where(order_refunds.c.order_id.in_(ids))).all():
            refunds[refund.order_id] = refund
    return [order_dict(r, lines[r.id], refunds.get(r.id)) for r in rows]


def record_change(
    conn: Connection, order_id: str, from_status: str | None, to_status: str, actor: str
) -> None:
    """The history row of a status change and its outbox event (the caller has made the change in this
    transaction, so all three commit or roll back together)."""
    conn.execute(
        insert(order_events).values(
            order_id=order_id, from_status=from_status, to_status=to_status, at=now_iso(), actor=actor
        )
    )
    outbox.emit(conn, order_id, from_status, to_status)


def change_status(
    conn: Connection, order_id: str, from_status: str, to_status: str, actor: str, **values: Any
) -> bool:
    """Move the order from `from_status` to `to_status` (with other column `values`) and record it; False
    (and nothing written) when the order is no longer in `from_status`."""
    changed = conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.status == from_status)
        .values(status=to_status, updated_at=now_iso(), **values)
    ).rowcount
    if changed != 1:
        return False
    record_change(conn, order_id, from_status, to_status, actor)
    return True
