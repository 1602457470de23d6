"""User tokens: short-lived HS256 JWTs signed with SHOP_JWT_SECRET. users issues them; every service that
serves a user verifies them itself with the shared secret (no call to users on the hot path)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ISSUER = "sample-shop/users"
ALGORITHM = "HS256"
ROLES = ("shopper", "admin")  # an admin may use the admin routes (/api/admin/..., /admin); a shopper may not


class AuthError(Exception):
    """The token is missing, malformed, expired or badly signed; the message says which."""


@dataclass(frozen=True)
class UserClaims:
    user_id: int
    email: str
    expires_at: int
    role: str = "shopper"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def issue_token(
    user_id: int, email: str, secret: str, ttl_s: int, now: float | None = None, role: str = "shopper"
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    issued = int(time.time() if now is None else now)
    payload = {
        "sub": str(user_id),
        "email": email,
        "role": role,
        "iat": issued,
        "exp": issued + ttl_s,
        "iss": ISSUER,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> UserClaims:
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "sub", "iss"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired: log in again (POST /api/auth/login)") from None
    except jwt.InvalidTokenError:  # the decoder's reason is for us, not for whoever sent the token
        raise AuthError("invalid token: log in again (POST /api/auth/login)") from None
    try:
        role = str(payload.get("role", "shopper"))
        if role not in ROLES:
            raise ValueError(role)
        return UserClaims(int(payload["sub"]), str(payload.get("email", "")), int(payload["exp"]), role)
    except (TypeError, ValueError):
        raise AuthError("invalid token subject or role") from None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; AuthError when absent or malformed."""
    if not authorization:
        raise AuthError(
            "missing bearer token: send `Authorization: Bearer <access_token>` from POST /api/auth/login"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header: expected `Bearer <access_token>`")
    return token.strip()


# Service-to-service credential: every outbound call of the kit's client carries the stack's shared token
# (the token file of the state folder locally, mode 0600; the Secret `shop-admin-token` on kind) in this
# header, and the internal routes (catalog stock and reservations, payment charges and refunds) refuse a
# request without it, so no other local process can free stock or fake a charge.
SERVICE_TOKEN_HEADER = "X-Shop-Service-Token"


def check_service_token(given: str | None, expected: str) -> None:
    """AuthError unless `given` is the stack's service token (constant-time comparison)."""
    import secrets

    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise AuthError(
            f"this is an internal route: send the stack's service token in {SERVICE_TOKEN_HEADER} "
            "(services do; the token file is in the state folder)"
        )
