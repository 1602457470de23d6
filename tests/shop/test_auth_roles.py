"""User tokens carry a role; admin routes demand it (kit/auth.py, kit/app.py `require_admin`). Pure: a real
FastAPI app in-process with the kit's error handlers, no servers."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from sample_shop.kit.app import AuthenticatedUser, require_admin
from sample_shop.kit.auth import ALGORITHM, ISSUER, AuthError, issue_token, verify_token
from sample_shop.kit.errors import install_error_handlers

SECRET = "test-secret-of-enough-length-for-hs256"


def test_role_round_trips_and_defaults_to_shopper() -> None:
    assert verify_token(issue_token(1, "a@example.com", SECRET, 60), SECRET).role == "shopper"
    claims = verify_token(issue_token(2, "b@example.com", SECRET, 60, role="admin"), SECRET)
    assert claims.role == "admin" and claims.is_admin
    # a token issued before roles existed has no role claim: it is a shopper's
    now = int(time.time())
    old = jwt.encode(
        {"sub": "3", "email": "c@example.com", "iat": now, "exp": now + 60, "iss": ISSUER}, SECRET, ALGORITHM
    )
    assert verify_token(old, SECRET).role == "shopper"


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(1, "a@example.com", SECRET, 60, role="root")
    now = int(time.time())
    forged = jwt.encode(
        {"sub": "1", "role": "root", "iat": now, "exp": now + 60, "iss": ISSUER}, SECRET, ALGORITHM
    )
    with pytest.raises(AuthError, match="role"):
        verify_token(forged, SECRET)


def test_require_admin_answers_401_then_403_then_200() -> None:
    class Config:
        jwt_secret = SECRET

    class Ctx:
        config = Config()

    app = FastAPI()
    app.state.ctx = Ctx()
    install_error_handlers(app)

    @app.get("/admin-only")
    def admin_only(user: AuthenticatedUser = Depends(require_admin)) -> dict[str, int]:
        return {"id": user.id}

    client = TestClient(app)
    assert client.get("/admin-only").status_code == 401
    shopper = issue_token(5, "s@example.com", SECRET, 60)
    answer = client.get("/admin-only", headers={"authorization": f"Bearer {shopper}"})
    assert answer.status_code == 403 and answer.json()["error"] == "admin_only"
    admin = issue_token(6, "root@example.com", SECRET, 60, role="admin")
    assert client.get("/admin-only", headers={"authorization": f"Bearer {admin}"}).json() == {"id": 6}
