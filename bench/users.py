"""Login latency before and after raising the password hash cost to OWASP's PBKDF2-SHA256 figure: real
logins through the gateway of the shared stack, one account hashed at the old cost (1,000 iterations) and
one at the current one, measured alternately in the same run, so the ratio is free of the machine's mood.
The login SLO (slo/specs/client.yaml, login-latency-client: under 1.5 s) must keep its meaning: the
current cost has to stay well inside it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import statistics
import time
import uuid
from pathlib import Path

import httpx

from bench.harness import BenchContext, Figure, benchmark
from sample_shop.kit.config import PBKDF2_ITERATIONS

OLD_ITERATIONS = 1000
LOGIN_SLO_S = 1.5


def _account(gateway: str, users_db: Path, iterations: int) -> tuple[str, str]:
    """A registered account whose stored hash is at `iterations` (set in users.db directly)."""
    email, password = f"bench-{uuid.uuid4().hex[:12]}@example.com", "bench-password-1"
    registered = httpx.post(
        f"{gateway}/api/auth/register",
        json={"email": email, "password": password, "name": "Bench"},
        timeout=30,
    )
    registered.raise_for_status()
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()
    with sqlite3.connect(users_db, timeout=10) as db:
        db.execute(
            "UPDATE users SET password_hash = ?, salt = ?, iterations = ? WHERE email = ?",
            (digest, salt.hex(), iterations, email),
        )
    return email, password


@benchmark("users.login_hash_cost", repeat=1, order=45)
def login_hash_cost(ctx: BenchContext) -> list[Figure]:
    """Login latency (median of alternating real logins) at the old and the current PBKDF2 cost."""
    stack = ctx.shared_stack()
    users_db = Path(stack.state_dir) / "data" / "users.db"
    rounds = 3 if ctx.smoke else 20
    timings: dict[int, list[float]] = {OLD_ITERATIONS: [], PBKDF2_ITERATIONS: []}
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for _ in range(rounds):
            for iterations in timings:
                # a fresh account each time: a login at the old cost rehashes it at the current one
                email, password = _account(stack.gateway_url, users_db, iterations)
                started = time.perf_counter()
                client.post("/api/auth/login", json={"email": email, "password": password}).raise_for_status()
                timings[iterations].append(time.perf_counter() - started)
                time.sleep(0.3)  # let an old-cost login's background rehash finish before the next one
    old = statistics.median(timings[OLD_ITERATIONS]) * 1000
    new = statistics.median(timings[PBKDF2_ITERATIONS]) * 1000
    return [
        Figure(f"login at {OLD_ITERATIONS} iterations (median)", old, "ms"),
        Figure(
            f"login at {PBKDF2_ITERATIONS} iterations (median)",
            new,
            "ms",
            target=LOGIN_SLO_S * 1000 / 4,
            note="target: a quarter of the login SLO's 1.5 s, so the SLO still measures the shop",
        ),
        Figure("login cost ratio, current / old", new / old if old else 0.0, "x"),
    ]
