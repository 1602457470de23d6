"""Outbound-client policy: the knobs of timeouts, retries, backoff, the circuit breaker and replica
ejection, the two profiles (`resilient`, `naive`), their env overrides (SHOP_RESILIENCE, SHOP_CLIENT_*) and
the runtime override set through the admin `/policy` endpoint with a TTL.

Pure: no I/O; the store takes a clock so expiry is testable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

PROFILES = ("resilient", "naive")
POLICY_TTL_RANGE_S = (1, 3600)


@dataclass(frozen=True)
class ClientPolicy:
    profile: str
    timeout_s: float  # per attempt
    retries: int  # extra attempts after the first
    backoff_base_s: float  # full-jitter exponential backoff: uniform(0, min(max, base * 2**n))
    backoff_max_s: float
    retry_statuses: tuple[int, ...]  # answers that are retried (besides timeouts and connection errors)
    retry_unsafe: bool  # retry POSTs without an Idempotency-Key too (naive)
    breaker: bool
    breaker_window_s: float  # sliding window over which the failure ratio is computed
    breaker_min_calls: int  # fewer calls than this in the window never open the breaker
    breaker_failure_ratio: float
    breaker_open_s: float  # how long the breaker stays open before letting probes through
    breaker_half_open_calls: int  # concurrent probe calls admitted while half-open
    eject_s: float  # a replica refusing connections is skipped for this long

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["retry_statuses"] = list(self.retry_statuses)
        return data


PROFILE_DEFAULTS: dict[str, ClientPolicy] = {
    "resilient": ClientPolicy(
        profile="resilient",
        timeout_s=1.0,
        retries=2,
        backoff_base_s=0.05,
        backoff_max_s=1.0,
        retry_statuses=(502, 503, 504),
        retry_unsafe=False,
        breaker=True,
        breaker_window_s=10.0,
        breaker_min_calls=10,
        breaker_failure_ratio=0.5,
        breaker_open_s=5.0,
        breaker_half_open_calls=2,
        eject_s=2.0,
    ),
    # What an unprepared service does: wait long, retry at once on anything, never stop calling.
    "naive": ClientPolicy(
        profile="naive",
        timeout_s=30.0,
        retries=3,
        backoff_base_s=0.0,
        backoff_max_s=0.0,
        retry_statuses=(500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511),
        retry_unsafe=True,
        breaker=False,
        breaker_window_s=10.0,
        breaker_min_calls=10,
        breaker_failure_ratio=0.5,
        breaker_open_s=5.0,
        breaker_half_open_calls=2,
        eject_s=2.0,
    ),
}


@dataclass(frozen=True)
class Knob:
    """One tunable field: its env variable, type and valid range."""

    field: str
    kind: str  # float | int | bool | statuses
    lo: float = 0
    hi: float = 0

    @property
    def env_name(self) -> str:
        return "SHOP_CLIENT_" + self.field.upper()

    def describe(self) -> str:
        if self.kind == "bool":
            return "on or off"
        if self.kind == "statuses":
            return "a comma-separated list of HTTP statuses 400..599"
        return f"{'an integer' if self.kind == 'int' else 'a number'} between {self.lo:g} and {self.hi:g}"


KNOBS: dict[str, Knob] = {
    k.field: k
    for k in (
        Knob("timeout_s", "float", 0.01, 300),
        Knob("retries", "int", 0, 10),
        Knob("backoff_base_s", "float", 0, 10),
        Knob("backoff_max_s", "float", 0, 60),
        Knob("retry_statuses", "statuses"),
        Knob("retry_unsafe", "bool"),
        Knob("breaker", "bool"),
        Knob("breaker_window_s", "float", 1, 600),
        Knob("breaker_min_calls", "int", 1, 10_000),
        Knob("breaker_failure_ratio", "float", 0.01, 1.0),
        Knob("breaker_open_s", "float", 0.1, 600),
        Knob("breaker_half_open_calls", "int", 1, 100),
        Knob("eject_s", "float", 0, 600),
    )
}
assert set(KNOBS) == {f.name for f in fields(ClientPolicy)} - {"profile"}


def parse_knob(knob: Knob, value: Any) -> Any:
    """Parse one knob value (from env text or JSON); raises ValueError with what is valid."""
    if knob.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("on", "true", "yes", "1"):
            return True
        if text in ("off", "false", "no", "0"):
            return False
        raise ValueError(f"must be {knob.describe()}")
    if knob.kind == "statuses":
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        try:
            statuses = tuple(sorted({int(str(s).strip()) for s in items if str(s).strip()}))
        except ValueError:
            raise ValueError(f"must be {knob.describe()}") from None
        if any(not 400 <= s <= 599 for s in statuses):
            raise ValueError(f"must be {knob.describe()}")
        return statuses
    if isinstance(value, bool):
        raise ValueError(f"must be {knob.describe()}")
    try:
        number: float = int(str(value).strip()) if knob.kind == "int" else float(str(value).strip())
    except ValueError:
        raise ValueError(f"must be {knob.describe()}") from None
    if not knob.lo <= number <= knob.hi:
        raise ValueError(f"must be {knob.describe()}")
    return number


def policy_from_env(env: Mapping[str, str]) -> ClientPolicy:
    """The base policy: SHOP_RESILIENCE picks the profile; SHOP_CLIENT_<KNOB> overrides any knob."""
    profile = (env.get("SHOP_RESILIENCE") or "resilient").strip().lower()
    if profile not in PROFILES:
        raise ValueError(f"SHOP_RESILIENCE={profile!r}: must be one of {', '.join(PROFILES)}")
    changes: dict[str, Any] = {}
    for knob in KNOBS.values():
        raw = env.get(knob.env_name)
        if raw is None or raw.strip() == "":
            continue
        try:
            changes[knob.field] = parse_knob(knob, raw)
        except ValueError as exc:
            raise ValueError(f"{knob.env_name}={raw!r}: {exc}") from None
    return replace(PROFILE_DEFAULTS[profile], **changes)


def validate_policy_override(data: Any) -> tuple[ClientPolicy | None, float, list[dict[str, str]]]:
    """Validate an admin `/policy` body `{"profile", "overrides": {...}, "ttl_s"}`.

    Returns (policy, ttl_s, errors); the policy is the profile's defaults with the overrides applied (env
    knobs are not carried over: a runtime override describes the whole policy).
    """
    errors: list[dict[str, str]] = []
    if not isinstance(data, dict):
        return None, 0, [{"field": "body", "message": "must be a JSON object"}]
    unknown = set(data) - {"profile", "overrides", "ttl_s"}
    for key in sorted(unknown):
        errors.append({"field": key, "message": "unknown field; valid: profile, overrides, ttl_s"})
    profile = data.get("profile", "resilient")
    if profile not in PROFILES:
        errors.append({"field": "profile", "message": f"must be one of {', '.join(PROFILES)}"})
        profile = "resilient"
    ttl = data.get("ttl_s")
    lo, hi = POLICY_TTL_RANGE_S
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not lo <= ttl <= hi:
        errors.append({"field": "ttl_s", "message": f"required; a number of seconds between {lo} and {hi}"})
        ttl = 0
    overrides = data.get("overrides", {})
    changes: dict[str, Any] = {}
    if not isinstance(overrides, dict):
        errors.append({"field": "overrides", "message": "must be an object of knob: value"})
        overrides = {}
    for key, value in overrides.items():
        knob = KNOBS.get(key)
        if knob is None:
            errors.append(
                {"field": f"overrides.{key}", "message": f"unknown knob; valid: {', '.join(KNOBS)}"}
            )
            continue
        try:
            changes[key] = parse_knob(knob, value)
        except ValueError as exc:
            errors.append({"field": f"overrides.{key}", "message": str(exc)})
    if errors:
        return None, 0, errors
    return replace(PROFILE_DEFAULTS[profile], **changes), float(ttl), []


class PolicyStore:
    """The effective client policy: the base from env, or a runtime override until it expires."""

    def __init__(self, base: ClientPolicy, clock: Callable[[], float] = time.time) -> None:
        self.base = base
        self._clock = clock
        self._override: ClientPolicy | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change so clients can reconfigure their breakers

    def current(self) -> ClientPolicy:
        override = self._override
        if override is not None:
            if self._clock() < self._expires_at:
                return override
            self.clear()
        return self.base

    def set_override(self, policy: ClientPolicy, ttl_s: float) -> float:
        with self._lock:
            self._override = policy
            self._expires_at = self._clock() + ttl_s
            self.version += 1
            return self._expires_at

    def clear(self) -> bool:
        with self._lock:
            had = self._override is not None
            self._override = None
            self._expires_at = 0.0
            if had:
                self.version += 1
            return had

    def describe(self) -> dict[str, Any]:
        policy = self.current()
        overridden = self._override is not None
        return {
            "policy": policy.to_dict(),
            "override": overridden,
            "expires_at": self._expires_at if overridden else None,
            "remaining_s": round(max(0.0, self._expires_at - self._clock()), 3) if overridden else None,
            "base": self.base.to_dict(),
        }
