"""Login latency at each password hash the users service has known: PBKDF2-SHA256 at 1,000 iterations (the
first version), at 600,000 (OWASP's PBKDF2 figure, the hardening release) and Argon2id at OWASP's minimum
(19 MiB, 2 passes: the current one). Real logins through the gateway of the shared stack, one fresh account
per login, the three kinds alternated in the same run, so the ratios are free of the machine's mood.
The login SLO (slo/specs/client.yaml, login-latency-client: under 1.5 s) must keep its meaning: the
current cost has to stay well inside it, and a login's CPU is what a burst of sign-ups queues on."""

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

FIRST_ITERATIONS = 1000
OWASP_PBKDF2_ITERATIONS = 600_000
ARGON2 = 0  # the users row's `iterations` of an Argon2id hash (sample_shop/users/passwords.py)
LOGIN_SLO_S = 1.5
KINDS = {FIRST_ITERATIONS: "PBKDF2 1,000", OWASP_PBKDF2_ITERATIONS: "PBKDF2 600,000", ARGON2: "Argon2id"}


def _account(gateway: str, users_db: Path, iterations: int) -> tuple[str, str]:
    """A registered account (hashed with Argon2id); for a PBKDF2 kind its hash is replaced in users.db."""
    email, password = f"bench-{uuid.uuid4().hex[:12]}@example.com", "bench-password-1"
    registered = httpx.post(
        f"{gateway}/api/auth/register",
        json={"email": email, "password": password, "name": "Bench"},
        timeout=30,
    )
    registered.raise_for_status()
    if iterations != ARGON2:
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
    """Login latency (median of alternating real logins) per hash: PBKDF2 1k, PBKDF2 600k, Argon2id."""
    stack = ctx.shared_stack()
    users_db = Path(stack.state_dir) / "data" / "users.db"
    rounds = 3 if ctx.smoke else 20
    timings: dict[int, list[float]] = {kind: [] for kind in KINDS}
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for _ in range(rounds):
            for kind in timings:
                # a fresh account each time: a login at a PBKDF2 cost rehashes it with Argon2id
                email, password = _account(stack.gateway_url, users_db, kind)
                started = time.perf_counter()
                client.post("/api/auth/login", json={"email": email, "password": password}).raise_for_status()
                timings[kind].append(time.perf_counter() - started)
                time.sleep(0.3)  # let a PBKDF2 login's background rehash finish before the next one
    median_ms = {kind: statistics.median(values) * 1000 for kind, values in timings.items()}
    first, owasp, argon2 = median_ms[FIRST_ITERATIONS], median_ms[OWASP_PBKDF2_ITERATIONS], median_ms[ARGON2]
    return [
        Figure(f"login, {KINDS[FIRST_ITERATIONS]} (median)", first, "ms"),
        Figure(f"login, {KINDS[OWASP_PBKDF2_ITERATIONS]} (median)", owasp, "ms"),
        Figure(
            f"login, {KINDS[ARGON2]} m=19 MiB t=2 (median, current)",
            argon2,
            "ms",
            target=LOGIN_SLO_S * 1000 / 4,
            note="target: a quarter of the login SLO's 1.5 s, so the SLO still measures the shop",
        ),
        Figure("login ratio, Argon2id / PBKDF2 600,000", argon2 / owasp if owasp else 0.0, "x"),
    ]
