"""The users service's password hashing (sample_shop/users/passwords.py), without a server: Argon2id at
OWASP's minimum for new hashes, PBKDF2 hashes of earlier versions verified and marked for rehash."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from sample_shop.users.passwords import ARGON2_MARKER, HashCost, Passwords, pbkdf2_hex


@dataclass
class Row:
    password_hash: str
    salt: str
    iterations: int


def test_a_new_hash_is_argon2id_at_owasps_minimum_and_verifies_only_its_password() -> None:
    passwords = Passwords()
    hashed = passwords.hash("correct horse")
    assert hashed.iterations == ARGON2_MARKER and hashed.salt == ""
    assert hashed.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    row = Row(**hashed.columns())
    assert passwords.verify(row, "correct horse")
    assert not passwords.verify(row, "correct horsE")
    assert not passwords.needs_rehash(row)
    assert passwords.hash("correct horse").password_hash != hashed.password_hash  # salted


def test_an_earlier_versions_pbkdf2_hash_verifies_and_needs_a_rehash() -> None:
    passwords = Passwords()
    salt = os.urandom(16)
    row = Row(pbkdf2_hex("old-password", salt, 1000), salt.hex(), 1000)
    assert passwords.verify(row, "old-password")
    assert not passwords.verify(row, "old-passwore")
    assert passwords.needs_rehash(row)


def test_a_hash_at_another_cost_needs_a_rehash_and_a_broken_one_never_verifies() -> None:
    cheap = Passwords(HashCost(memory_kib=1024, time_cost=1))
    row = Row(**cheap.hash("pw-123456").columns())
    current = Passwords()
    assert current.verify(row, "pw-123456")  # the parameters are in the PHC string
    assert current.needs_rehash(row)
    broken = Row("not-a-hash", "", ARGON2_MARKER)
    assert not current.verify(broken, "pw-123456")
    assert current.needs_rehash(broken)


def test_the_async_methods_hash_off_the_event_loop_on_one_thread() -> None:
    passwords = Passwords()

    async def main() -> list[bool]:
        hashed = await asyncio.gather(*(passwords.hash_async(f"pw-{i}-secret") for i in range(4)))
        rows = [Row(**h.columns()) for h in hashed]
        return list(
            await asyncio.gather(*(passwords.verify_async(r, f"pw-{i}-secret") for i, r in enumerate(rows)))
        )

    assert asyncio.run(main()) == [True] * 4
