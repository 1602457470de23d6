"""The transactional outbox of orders (issue 18 item 4): an event row exists if and only if its status
change committed; claims lease events (at-least-once), a spent event is parked; the internal routes need
the stack's service token."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import Engine

from sample_shop.kit.auth import SERVICE_TOKEN_HEADER
from sample_shop.orders import outbox, store
from sample_shop.orders.models import metadata, order_contacts, orders
from shop.helpers import Customer
from shop.processes import ADMIN_TOKEN, ShopProcesses
from shop.test_lifecycle import admin_client, paid_order


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    metadata.create_all(engine)
    return engine


def new_order(engine: Engine, status: str = "pending") -> str:
    order_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(orders).values(
                id=order_id,
                user_id=7,
                idempotency_key=order_id,
                status=status,
                attempt=1,
                items_ready=True,
                total_cents=1250,
                currency="EUR",
                retryable=False,
                created_at=store.now_iso(),
                updated_at=store.now_iso(),
            )
        )
        conn.execute(insert(order_contacts).values(order_id=order_id, email="ada@example.com"))
    return order_id


def events(engine: Engine, order_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.outbox).where(outbox.outbox.c.order_id == order_id)).all()
    return [(r.type, r.state) for r in rows]


def test_the_event_exists_iff_the_change_committed(engine: Engine) -> None:
    committed, rolled_back, lost_race = new_order(engine), new_order(engine), new_order(engine, "failed")
    with engine.begin() as conn:
        assert store.change_status(conn, committed, "pending", "paid", "checkout")
    assert events(engine, committed) == [("order.paid", "pending")]

    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        assert store.change_status(conn, rolled_back, "pending", "paid", "checkout")
        raise Boom  # e.g. the next statement of the transaction failed
    assert events(engine, rolled_back) == []
    with engine.connect() as conn:
        assert conn.execute(select(orders.c.status).where(orders.c.id == rolled_back)).scalar() == "pending"
    with engine.begin() as conn:  # the conditional update loses: no change, no event
        assert not store.change_status(conn, lost_race, "pending", "paid", "checkout")
    assert events(engine, lost_race) == []
    with engine.begin() as conn:  # pending/failed are the saga's own: not announced
        store.record_change(conn, lost_race, "failed", "pending", "checkout")
    assert events(engine, lost_race) == []


def test_claim_leases_redelivers_after_the_lease_and_parks_a_spent_event(engine: Engine) -> None:
    order_id = new_order(engine)
    with engine.begin() as conn:
        store.change_status(conn, order_id, "pending", "paid", "checkout")
    now = 1_000.0
    with engine.begin() as conn:
        [event] = outbox.claim(conn, "n-1", 10, 30.0, now)
        assert event["payload"]["email"] == "ada@example.com" and event["attempts"] == 1
        assert outbox.claim(conn, "n-2", 10, 30.0, now + 1) == []  # leased to n-1
    for attempt in range(2, outbox.MAX_ATTEMPTS + 1):  # n-1 died: redelivered once the lease runs out
        now += 31
        with engine.begin() as conn:
            [again] = outbox.claim(conn, "n-2", 10, 30.0, now)
        assert again["event_id"] == event["event_id"] and again["attempts"] == attempt
    with engine.begin() as conn:
        assert outbox.claim(conn, "n-2", 10, 30.0, now + 31) == []
        assert outbox.backlog(conn, now + 31)["states"]["parked"] == 1
    # a failed delivery goes back to pending until its attempts are spent; ack marks it done
    other = new_order(engine)
    with engine.begin() as conn:
        store.change_status(conn, other, "pending", "paid", "checkout")
        [leased] = outbox.claim(conn, "n-3", 10, 30.0, now)
        assert outbox.fail(conn, leased["event_id"], "SMTP 451") == "pending"
        assert outbox.claim(conn, "n-3", 10, 30.0, time.time()) == []  # not before its retry delay
        [leased] = outbox.claim(conn, "n-3", 10, 30.0, time.time() + outbox.retry_delay_s(1) + 0.01)
        assert [kind for kind, _ in outbox.ack(conn, [leased["event_id"]])] == ["order.paid"]
        assert outbox.ack(conn, [leased["event_id"]]) == []  # twice is harmless
        assert outbox.backlog(conn, now)["undelivered"] == 0


def test_every_status_change_writes_its_event_with_the_trace(shop: ShopProcesses, customer: Customer) -> None:
    order = paid_order(customer)
    shipping = admin_client(shop)
    trace_id = uuid.uuid4().hex  # the click's trace: the event must continue it
    try:
        answer = shipping.post(
            f"/api/admin/orders/{order['id']}/status",
            json={"status": "shipped"},
            headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
        )
        assert answer.status_code == 200, answer.text
    finally:
        shipping.close()
    token = {SERVICE_TOKEN_HEADER: ADMIN_TOKEN}
    orders_url = shop.url("orders")
    assert httpx.get(f"{orders_url}/outbox/events", timeout=5).status_code == 401  # internal
    listed = httpx.get(f"{orders_url}/outbox/events", headers=token, timeout=5).json()["events"]
    mine = sorted((e for e in listed if e["order_id"] == order["id"]), key=lambda e: e["created_s"])
    assert [e["type"] for e in mine] == ["order.paid", "order.shipped"]
    assert all(e["payload"]["email"] == customer.email for e in mine)
    assert all(e["traceparent"] and len(e["traceparent"].split("-")[1]) == 32 for e in mine)
    assert mine[1]["traceparent"].split("-")[1] == trace_id
    backlog = httpx.get(f"{orders_url}/outbox/backlog", headers=token, timeout=5).json()
    assert backlog["undelivered"] >= 2 and backlog["max_attempts"] == outbox.MAX_ATTEMPTS
