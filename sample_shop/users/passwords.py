"""Password hashing for the users service: Argon2id (RFC 9106) at the OWASP Password Storage Cheat Sheet's
minimum (19 MiB of memory, 2 passes, 1 lane), and the PBKDF2-SHA256 hashes of earlier versions verified and
upgraded at the next login.

Why Argon2id and not PBKDF2 at OWASP's 600,000 iterations: both are OWASP-recommended, but PBKDF2 reaches its
strength by CPU time alone (0.11 s a hash on this 2-core machine), so the load journeys' burst of sign-ups
and logins queued on the hashing thread and the gateway answered 503. Argon2id reaches it by memory
hardness at about a fifth of the CPU (0.022 s here; bench/users.py users.login_hash_cost).

The users table keeps its three columns (no migration): `password_hash`, `salt`, `iterations`. A row with
`iterations == 0` holds an Argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`, salt and
cost inside); a row with `iterations > 0` is a legacy PBKDF2-SHA256 hex digest with a hex salt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from sample_shop.kit.config import ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ServiceConfig

T = TypeVar("T")

ARGON2_PARALLELISM = 1  # OWASP's minimum: 19 MiB, 2 passes (kit/config.py) and 1 lane
ARGON2_MARKER = 0  # the `iterations` column of a row whose password_hash is an Argon2id PHC string


class StoredPassword(Protocol):
    """The three columns of a users row that hold its password."""

    password_hash: str
    salt: str
    iterations: int


@dataclass(frozen=True)
class HashedPassword:
    """What to write into a users row's three password columns."""

    password_hash: str
    salt: str
    iterations: int

    def columns(self) -> dict[str, Any]:
        return {"password_hash": self.password_hash, "salt": self.salt, "iterations": self.iterations}


@dataclass(frozen=True)
class HashCost:
    memory_kib: int = ARGON2_MEMORY_KIB
    time_cost: int = ARGON2_TIME_COST
    parallelism: int = ARGON2_PARALLELISM

    @classmethod
    def of(cls, config: ServiceConfig) -> HashCost:
        return cls(config.password_hash_memory_kib, config.password_hash_time_cost)


def pbkdf2_hex(password: str, salt: bytes, iterations: int) -> str:
    """An earlier version's hash (PBKDF2-HMAC-SHA256, hex): still verified, never written any more."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()


class Passwords:
    """Hashes and verifies passwords at one cost. The async methods run the hash on this object's single
    thread: a burst of sign-ups queues there, using at most one core per replica, instead of holding up
    the database threads or starving the stack's other services on two cores (argon2-cffi releases the
    GIL while it hashes)."""

    def __init__(self, cost: HashCost | None = None) -> None:
        self.cost = cost or HashCost()
        self._hasher = PasswordHasher(
            time_cost=self.cost.time_cost,
            memory_cost=self.cost.memory_kib,
            parallelism=self.cost.parallelism,
            type=Type.ID,
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-hash")

    def hash(self, password: str) -> HashedPassword:
        return HashedPassword(self._hasher.hash(password), "", ARGON2_MARKER)

    def verify(self, stored: StoredPassword, password: str) -> bool:
        if stored.iterations > 0:  # legacy PBKDF2
            candidate = pbkdf2_hex(password, bytes.fromhex(stored.salt), stored.iterations)
            return hmac.compare_digest(candidate, stored.password_hash)
        try:
            return self._hasher.verify(stored.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: StoredPassword) -> bool:
        """True for a legacy PBKDF2 hash, or an Argon2id hash made at another cost."""
        if stored.iterations > 0:
            return True
        try:
            return self._hasher.check_needs_rehash(stored.password_hash)
        except InvalidHashError:
            return True

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def hash_async(self, password: str) -> HashedPassword:
        return await self._off_loop(self.hash, password)

    async def verify_async(self, stored: StoredPassword, password: str) -> bool:
        return await self._off_loop(self.verify, stored, password)
