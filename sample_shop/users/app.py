"""users: registration, login and profile. Passwords are salted PBKDF2-SHA256; the iteration count is
deliberately low by default (SHOP_PASSWORD_HASH_ITERATIONS=1000) because login is a load-test journey on a
2-core machine - not a production setting."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import insert, select
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
from sample_shop.kit.auth import issue_token
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import Credentials, Registration
from sample_shop.users import account
from sample_shop.users.models import metadata, roles, users

log = logging.getLogger("sample_shop.users")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]


def hash_password(password: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()


def user_dict(row: Any) -> dict[str, Any]:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }


@router.post("/users/register", status_code=201, summary="create an account")
async def register(ctx: Ctx, body: Registration) -> JSONResponse:
    iterations = ctx.config.password_hash_iterations

    def work(conn: Connection) -> Any:
        salt = os.urandom(16)
        conn.execute(
            insert(users).values(
                email=body.email,
                name=body.name,
                password_hash=hash_password(body.password, salt, iterations),
                salt=salt.hex(),
                iterations=iterations,
                created_at=datetime.now(UTC),
            )
        )
        return conn.execute(select(users).where(users.c.email == body.email)).one()

    assert ctx.db is not None
    try:
        row = await ctx.db.write(work)
    except IntegrityError:
        raise ShopError(409, "email_taken", f"{body.email} is already registered; log in instead") from None
    log.info("user registered", extra={"fields": {"event": "user_registered", "user_id": row.id}})
    return JSONResponse(user_dict(row), status_code=201)


@router.post("/users/login", summary="exchange email and password for an access token")
async def login(ctx: Ctx, body: Credentials) -> JSONResponse:
    def work(conn: Connection) -> Any:
        row = conn.execute(select(users).where(users.c.email == body.email.lower())).first()
        if row is None:
            return None
        candidate = hash_password(body.password, bytes.fromhex(row.salt), row.iterations)
        if not hmac.compare_digest(candidate, row.password_hash):
            return None
        return row, account.role_of(conn, roles, row.id)

    assert ctx.db is not None
    found = await ctx.db.read(work)
    if found is None:
        raise ShopError(
            401,
            "invalid_credentials",
            "unknown email or wrong password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    row, role = found
    ttl = ctx.config.jwt_ttl_s
    token = issue_token(row.id, row.email, ctx.config.jwt_secret, ttl, role=role)
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ttl,
            "user": {**user_dict(row), "role": role},
        }
    )


@router.get("/users/me", summary="the logged-in user's profile")
async def me(ctx: Ctx, user: User) -> JSONResponse:
    assert ctx.db is not None
    row = await ctx.db.read(lambda conn: conn.execute(select(users).where(users.c.id == user.id)).first())
    if row is None:
        raise ShopError(404, "not_found", f"user {user.id} no longer exists; register again")
    return JSONResponse({**user_dict(row), "role": user.claims.role})


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "users",
        [router, account.install(users, roles, hash_password, user_dict)],
        config=config,
        metadata=metadata,
        on_startup=account.bootstrap_admin(
            users, roles, hash_password, account.configured_admin_password(os.environ)
        ),
        description="Registration, login (HS256 JWT), profile, roles and the first admin.",
    )
