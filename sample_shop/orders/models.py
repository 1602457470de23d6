"""orders' tables (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("idempotency_key", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # sample_shop/orders/lifecycle.py STATUSES
    Column("attempt", Integer, nullable=False),  # bumped when a transiently failed order is run again
    Column("items_ready", Boolean, nullable=False),  # the cart was snapshotted into order_items
    Column("total_cents", Integer),
    Column("currency", String(3), nullable=False),
    Column("charge_id", String(64)),
    Column("card_last4", String(4)),
    Column("failure_error", String(64)),
    Column("failure_message", Text),
    Column("failure_status", Integer),
    Column("failure_extra", Text),  # JSON
    Column("retryable", Boolean, nullable=False),  # a retry with the same key runs the saga again
    Column("lease_owner", String(64)),  # "<replica>:<boot id>" of the process running the saga
    Column("lease_until", Float),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_key"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)

# Every status change of an order, in order (exposed as the order's `history`). Written in the same
# transaction as the change itself, like the outbox event of the change (sample_shop/orders/outbox.py).
order_events = Table(
    "order_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("from_status", String(16)),  # None for the order's creation
    Column("to_status", String(16), nullable=False),
    Column("at", String(32), nullable=False),
    Column("actor", String(64), nullable=False),  # checkout | shopper:<id> | admin:<id>
)

# The refund of a cancelled order: written once payment has refunded it and catalog has taken the stock
# back, so a cancelled order without a row here is finished by the next cancel call (idempotent).
order_refunds = Table(
    "order_refunds",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("refund_id", String(64), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("at", String(32), nullable=False),
)

# What the first request with an Idempotency-Key asked for (a digest of its body): the same key with a
# different body is refused (422 idempotency_key_reused) instead of replaying the first order. Its own
# table, so an existing database gains it on start (create_all) without a migration; an order from before
# it has no row and is replayed as before.
order_requests = Table(
    "order_requests",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("body_digest", String(64), nullable=False),  # HMAC-SHA256 (keyed: the body holds a card number)
)

# The transactional outbox (sample_shop/orders/outbox.py): one row per notifiable status change, written in
# the change's own transaction, so an event exists if and only if its change committed. Consumers claim
# rows with a lease (at-least-once), acknowledge them (`done`), or give up on them: after MAX_ATTEMPTS
# claims a row is `parked` and no longer handed out.
outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(36), primary_key=True),  # uuid4: the consumers' de-duplication key
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False, index=True),
    Column("type", String(32), nullable=False),  # order.paid | order.shipped | order.delivered | ...
    Column("payload", Text, nullable=False),  # JSON
    Column("traceparent", String(55)),  # W3C trace context of the change (None: telemetry off)
    Column("created_at", String(32), nullable=False),
    Column("created_s", Float, nullable=False),  # unix seconds, for the notification latency
    Column("attempts", Integer, nullable=False),  # claims so far
    Column("state", String(8), nullable=False, index=True),  # pending | leased | done | parked
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("last_error", Text),
    Column("done_at", String(32)),
)

# Where an order's e-mails go: the shopper's address from the checkout's token (orders has no user table).
order_contacts = Table(
    "order_contacts",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("email", String(320), nullable=False),
)
