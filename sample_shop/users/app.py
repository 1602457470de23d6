"""users: registration, login and profile. Passwords are hashed with Argon2id at OWASP's minimum cost
(users/passwords.py); hashes of earlier versions verify and are upgraded at the next login."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask

from sample_shop.kit.app import (
    AuthenticatedUser,
    ServiceApp,
    ServiceContext,
    create_service_app,
    get_context,
    require_user,
)
from sample_shop.kit.auth import issue_token
from sample_shop.kit.config import ServiceConfig, load_service_config
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import Credentials, Registration
from sample_shop.users import account
from sample_shop.users.models import metadata, roles, users
from sample_shop.users.passwords import HashCost, Passwords

log = logging.getLogger("sample_shop.users")
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]


async def _rehash(ctx: ServiceContext, passwords: Passwords, user_id: int, password: str) -> None:
    """A hash made at another cost (an earlier version's PBKDF2, or other Argon2id parameters) is replaced
    at the current cost at the next login, when the password is known."""
    hashed = await passwords.hash_async(password)

    def work(conn: Connection) -> None:
        conn.execute(update(users).where(users.c.id == user_id).values(**hashed.columns()))

    assert ctx.db is not None
    await ctx.db.write(work)
    log.info("password rehashed", extra={"fields": {"event": "password_rehashed", "user_id": user_id}})


def user_dict(row: Any) -> dict[str, Any]:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }


def _auth_routes(passwords: Passwords) -> APIRouter:
    router = APIRouter()

    @router.post("/users/register", status_code=201, summary="create an account")
    async def register(ctx: Ctx, body: Registration) -> JSONResponse:
        return await _register(ctx, passwords, body)

    @router.post("/users/login", summary="exchange email and password for an access token")
    async def login(ctx: Ctx, body: Credentials) -> JSONResponse:
        return await _login(ctx, passwords, body)

    @router.get("/users/me", summary="the logged-in user's profile")
    async def me(ctx: Ctx, user: User) -> JSONResponse:
        return await _me(ctx, user)

    return router


async def _register(ctx: ServiceContext, passwords: Passwords, body: Registration) -> JSONResponse:
    hashed = await passwords.hash_async(body.password)  # on the hashing thread, not in a db thread

    def work(conn: Connection) -> Any:
        conn.execute(
            insert(users).values(
                email=body.email, name=body.name, created_at=datetime.now(UTC), **hashed.columns()
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


async def _login(ctx: ServiceContext, passwords: Passwords, body: Credentials) -> JSONResponse:
    def work(conn: Connection) -> Any:
        row = conn.execute(select(users).where(users.c.email == body.email.lower())).first()
        return None if row is None else (row, account.role_of(conn, roles, row.id))

    assert ctx.db is not None
    found = await ctx.db.read(work)
    # the hash runs on the hashing thread, not in a database thread: a burst of logins must not hold up
    # every other query
    if found is not None and not await passwords.verify_async(found[0], body.password):
        found = None
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
        },
        # after the answer is sent: the one-time rehash does not slow this login down
        background=BackgroundTask(_rehash, ctx, passwords, row.id, body.password)
        if passwords.needs_rehash(row)
        else None,
    )


async def _me(ctx: ServiceContext, user: AuthenticatedUser) -> JSONResponse:
    assert ctx.db is not None
    row = await ctx.db.read(lambda conn: conn.execute(select(users).where(users.c.id == user.id)).first())
    if row is None:
        raise ShopError(404, "not_found", f"user {user.id} no longer exists; register again")
    return JSONResponse({**user_dict(row), "role": user.claims.role})


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    config = config or load_service_config("users")
    passwords = Passwords(HashCost.of(config))
    return create_service_app(
        "users",
        [_auth_routes(passwords), account.install(users, roles, passwords, user_dict)],
        config=config,
        metadata=metadata,
        on_startup=account.bootstrap_admin(
            users, roles, passwords, account.configured_admin_password(os.environ)
        ),
        description="Registration, login (HS256 JWT), profile, roles and the first admin.",
    )
