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
    Column("status", String(16), nullable=False),  # pending | completed | failed
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
