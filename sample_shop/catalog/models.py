"""catalog's tables (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(50), nullable=False, index=True),
    Column("price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", Integer, nullable=False),
)

# One reservation per order attempt: reserving is idempotent per reservation id, releasing leaves a
# tombstone so a late duplicate of the reserve call can never take stock for a failed attempt again.
reservations = Table(
    "reservations",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # reserved | released
    Column("created_at", String(32), nullable=False),
)

reservation_items = Table(
    "reservation_items",
    metadata,
    Column("reservation_id", String(100), ForeignKey("reservations.id"), primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
    Column("name", String(200), nullable=False),
)
