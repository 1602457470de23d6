"""cart's tables (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

metadata = MetaData()
cart_items = Table(
    "cart_items",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("product_id", Integer, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
    Column("added_at", String(32), nullable=False),
)
