"""users' tables (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("password_hash", String(128), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),  # kit/auth.py ROLES
)
