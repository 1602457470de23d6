"""users: profile edits, password change, roles and the first admin (docs/shop.md, "Accounts").

Roles live in their own table (a user without a row is a shopper), so the users table stays as it was and
an existing database needs no migration. The first admin, `admin@shop.local`, is created on the first
start: its password comes from SHOP_FIRST_ADMIN_PASSWORD_FILE (a mounted Secret on kind) or is generated
and written to `<state dir>/admin-password` (0600) for the person running the stack locally.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from sample_shop.basics import write_text_atomic
from sample_shop.kit.app import AuthenticatedUser, ServiceContext, StartupHook, get_context, require_user
from sample_shop.kit.config import ConfigError
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import PasswordChange, ProfileEdit
from sample_shop.users.passwords import Passwords

log = logging.getLogger("sample_shop.users")
Ctx = Annotated[ServiceContext, Depends(get_context)]
User = Annotated[AuthenticatedUser, Depends(require_user)]

FIRST_ADMIN_EMAIL = "admin@shop.local"
FIRST_ADMIN_NAME = "Shop Admin"
ADMIN_PASSWORD_FILE = "admin-password"  # in the state folder, 0600
PASSWORD_FILE_VARIABLE = "SHOP_FIRST_ADMIN_PASSWORD_FILE"
MIN_PASSWORD = 8
MAX_PASSWORD = 128  # as at registration (kit/wire.py Registration)


def weakness(new_password: str, old_password: str, email: str) -> str | None:
    """Why a new password is refused, or None (pure)."""
    if len(new_password) < MIN_PASSWORD:
        return f"the new password needs at least {MIN_PASSWORD} characters"
    if len(new_password) > MAX_PASSWORD:
        return f"the new password may have at most {MAX_PASSWORD} characters"
    if new_password == old_password:
        return "the new password is the old one"
    if len(set(new_password)) < 3 or new_password.lower() in email.lower():
        return "the new password is too easy to guess"
    return None


def role_of(conn: Connection, roles: Table, user_id: int) -> str:
    role = conn.execute(select(roles.c.role).where(roles.c.user_id == user_id)).scalar_one_or_none()
    return role or "shopper"


def install(users: Table, roles: Table, passwords: Passwords, user_dict: Any) -> APIRouter:
    """The account routes over the users service's own table and password hashing."""
    router = APIRouter()

    @router.patch("/users/me", summary="change the logged-in user's name")
    async def edit_profile(ctx: Ctx, user: User, body: ProfileEdit) -> JSONResponse:
        def work(conn: Connection) -> Any:
            conn.execute(update(users).where(users.c.id == user.id).values(name=body.name))
            return conn.execute(select(users).where(users.c.id == user.id)).first()

        assert ctx.db is not None
        row = await ctx.db.write(work)
        if row is None:
            raise ShopError(404, "not_found", f"user {user.id} no longer exists; register again")
        log.info("profile edited", extra={"fields": {"event": "profile_edited", "user_id": user.id}})
        return JSONResponse(user_dict(row))

    @router.post(
        "/users/me/password", status_code=204, summary="change the password (the old one is required)"
    )
    async def change_password(ctx: Ctx, user: User, body: PasswordChange) -> Response:
        assert ctx.db is not None
        row = await ctx.db.read(lambda conn: conn.execute(select(users).where(users.c.id == user.id)).first())
        # both hashes run on the hashing thread, outside the write transaction (it holds the write lock)
        if row is None or not await passwords.verify_async(row, body.old_password):
            raise ShopError(401, "wrong_password", "the old password is not right", field="old_password")
        problem = weakness(body.new_password, body.old_password, row.email)
        if problem is not None:
            raise ShopError(422, "weak_password", problem, field="new_password")
        hashed = await passwords.hash_async(body.new_password)

        def work(conn: Connection) -> str | None:
            # only over the hash that was checked: a concurrent change in between wins, this one is refused
            changed = conn.execute(
                update(users)
                .where(users.c.id == user.id, users.c.password_hash == row.password_hash)
                .values(**hashed.columns())
            )
            return None if changed.rowcount == 1 else "wrong_password"

        if await ctx.db.write(work) is not None:
            raise ShopError(401, "wrong_password", "the old password is not right", field="old_password")
        log.info("password changed", extra={"fields": {"event": "password_changed", "user_id": user.id}})
        return Response(status_code=204)

    return router


def configured_admin_password(env: Mapping[str, str]) -> str | None:
    """The first admin's password from the file SHOP_FIRST_ADMIN_PASSWORD_FILE names (a mounted Secret on
    kind); None when the variable is unset (a password is then generated). ConfigError when unusable."""
    path = env.get(PASSWORD_FILE_VARIABLE)
    if not path:
        return None
    try:
        password = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{PASSWORD_FILE_VARIABLE}={path}: cannot read it ({exc.strerror})") from None
    if len(password) < MIN_PASSWORD:
        raise ConfigError(
            f"{PASSWORD_FILE_VARIABLE}={path}: the password needs at least {MIN_PASSWORD} characters"
        )
    return password


def bootstrap_admin(users: Table, roles: Table, passwords: Passwords, configured: str | None) -> StartupHook:
    """The startup hook that creates the first admin once (replicas race safely on the write lock), with the
    `configured` password or, when None, a generated one written to the state folder."""

    async def hook(ctx: ServiceContext) -> None:
        password_file = ctx.config.state_dir / ADMIN_PASSWORD_FILE

        def work(conn: Connection) -> bool:
            if conn.execute(select(users.c.id).where(users.c.email == FIRST_ADMIN_EMAIL)).first() is not None:
                return False
            password = configured or secrets.token_urlsafe(18)
            conn.execute(
                insert(users).values(
                    email=FIRST_ADMIN_EMAIL,
                    name=FIRST_ADMIN_NAME,
                    created_at=datetime.now(UTC),
                    **passwords.hash(password).columns(),
                )
            )
            admin_id = conn.execute(select(users.c.id).where(users.c.email == FIRST_ADMIN_EMAIL)).scalar_one()
            conn.execute(insert(roles).values(user_id=admin_id, role="admin"))
            if configured is None:  # before the commit: a created admin always has its password on disk
                write_text_atomic(password_file, password + "\n", mode=0o600)
            return True

        assert ctx.db is not None
        if await ctx.db.write(work):
            log.warning(
                "first admin created",
                extra={
                    "fields": {
                        "event": "admin_created",
                        "email": FIRST_ADMIN_EMAIL,
                        "password_file": str(password_file),
                    }
                },
            )

    return hook
