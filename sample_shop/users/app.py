"""users: registration, login and profile. Passwords are salted PBKDF2-SHA256; the iteration count is
deliberately low by default (SHOP_PASSWORD_HASH_ITERATIONS=1000) because login is a load-test journey on a
2-core machine - not a production setting."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

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
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import Credentials, Registration
from sample_shop.users import account
from sample_shop.users.models import metadata, roles, users

log = logging.getLogger("sample_shop.users")
router = APIRouter()
T = TypeVar("T")
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]


def hash_password(password: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()


# One hashing thread per replica: a burst of registrations and logins (every simulated shopper starts with
# both) queues here, using at most one core, instead of starving the other services on a 2-core machine.
_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbkdf2")


async def _in_hashing_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, fn, *args)


def _matches(row: Any, password: str) -> bool:
    candidate = hash_password(password, bytes.fromhex(row.salt), row.iterations)
    return hmac.compare_digest(candidate, row.password_hash)


async def _rehash(ctx: ServiceContext, user_id: int, password: str) -> None:
    """A hash made at a lower cost (an older version, or a lower SHOP_PASSWORD_HASH_ITERATIONS) is
    replaced at the current cost at the next login, when the password is known."""
    iterations = ctx.config.password_hash_iterations
    salt = os.urandom(16)
    digest = await _in_hashing_thread(hash_password, password, salt, iterations)

    def work(conn: Connection) -> None:
        conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=digest, salt=salt.hex(), iterations=iterations)
        )

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


@router.post("/users/register", status_code=201, summary="create an account")
async def register(ctx: Ctx, body: Registration) -> JSONResponse:
    iterations = ctx.config.password_hash_iterations
    salt = os.urandom(16)
    digest = await _in_hashing_thread(hash_password, body.password, salt, iterations)  # not in a db thread

    def work(conn: Connection) -> Any:
        conn.execute(
            insert(users).values(
                email=body.email,
                name=body.name,
                password_hash=digest,
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
        return None if row is None else (row, account.role_of(conn, roles, row.id))

    assert ctx.db is not None
    found = await ctx.db.read(work)
    # the hash runs in a thread of its own (hashlib releases the GIL), not in a database thread: a burst of
    # logins must not hold up every other query
    if found is not None and not await _in_hashing_thread(_matches, found[0], body.password):
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
        background=BackgroundTask(_rehash, ctx, row.id, body.password)
        if row.iterations < ctx.config.password_hash_iterations
        else None,
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
