"""Load profiles: their names, parameters, defaults and validation, and the pure schedule functions
(time since start -> target users and spawn rate) the Locust shapes follow.

Pure: no Locust, no clocks, no I/O. The CLI, the runner, the Chaos Toolkit extension and the tests all
validate through `resolve_params`, so a bad profile or parameter is rejected the same way everywhere,
before any process is started.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from load.mixes import DEFAULT_MIX, check_mix
from sample_shop import basics

MAX_USERS = 5_000
MAX_DURATION_S = 24 * 3600.0
MAX_SPAWN_RATE = 1_000.0
MAX_THINK_TIME_FACTOR = 10.0


class LoadConfigError(ValueError):
    """A profile name or parameter is invalid. `field` names the offending parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Tick:
    """What the shape asks of Locust at one moment: this many users, reached at this spawn rate."""

    users: int
    spawn_rate: float


@dataclass(frozen=True)
class LoadParams:
    """Fully resolved parameters of one load run (defaults applied, validated)."""

    profile: str
    users: int  # peak simulated users
    duration_s: float
    spawn_rate: float  # users started (or stopped) per second when the target changes
    think_time_factor: float = 1.0  # scales every journey's think time; 0 = closed loop (benchmarks)
    mix: str = DEFAULT_MIX  # which journeys shoppers start how often (load/mixes.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Schedule = Callable[[LoadParams, float], Tick | None]


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    description: str
    default_users: int
    default_duration_s: float
    schedule: Schedule
    default_spawn_rate: Callable[[int], float] = lambda users: float(max(1, math.ceil(users / 5)))


# ----------------------------------------------------------------------------------------------------
# Schedules. Each returns None once the duration is over (Locust then stops the run), and never asks
# for fewer than one user while running, so every second of a run produces data.
# ----------------------------------------------------------------------------------------------------


def steady(p: LoadParams, t: float) -> Tick | None:
    """A constant number of users for the whole duration."""
    if t >= p.duration_s:
        return None
    return Tick(p.users, p.spawn_rate)


def ramp(p: LoadParams, t: float) -> Tick | None:
    """Rises linearly from one user to `users`, reached at the end of the duration."""
    if t >= p.duration_s:
        return None
    target = max(1, math.ceil(p.users * t / p.duration_s))
    return Tick(min(p.users, target), p.spawn_rate)


SPIKE_BASELINE_SHARE = 0.2
SPIKE_WINDOW = (0.4, 0.6)  # the spike occupies this share of the duration


def spike(p: LoadParams, t: float) -> Tick | None:
    """A baseline of 20 % of `users`, a sudden spike to `users` between 40 % and 60 % of the duration,
    then back to the baseline. Users arrive and leave as fast as Locust can (the spawn rate is at
    least `users` per second) - that is what makes it a spike rather than a ramp."""
    if t >= p.duration_s:
        return None
    baseline = max(1, round(p.users * SPIKE_BASELINE_SHARE))
    start, end = (share * p.duration_s for share in SPIKE_WINDOW)
    fast = max(p.spawn_rate, float(p.users))
    if start <= t < end:
        return Tick(p.users, fast)
    return Tick(baseline, fast if t >= end else p.spawn_rate)


STEP_COUNT = 5


def step(p: LoadParams, t: float) -> Tick | None:
    """Five equal stairs: `users`/5, 2*`users`/5, ... `users`, each held for a fifth of the duration."""
    if t >= p.duration_s:
        return None
    stair = min(STEP_COUNT - 1, int(t / (p.duration_s / STEP_COUNT)))
    return Tick(max(1, math.ceil(p.users * (stair + 1) / STEP_COUNT)), p.spawn_rate)


def soak(p: LoadParams, t: float) -> Tick | None:
    """Steady moderate load held for a long time (memory leaks, connection exhaustion, slow drifts)."""
    return steady(p, t)


# Share of the daily peak per hour of day, 00:00 .. 23:00, for a consumer web shop: trough before dawn,
# a rise through the working day, a lunch plateau and the evening peak around 20:00-21:00.
DIURNAL_HOURLY_SHARE: tuple[float, ...] = (
    0.30, 0.20, 0.14, 0.10, 0.08, 0.10, 0.16, 0.28, 0.45, 0.58, 0.66, 0.72,
    0.78, 0.76, 0.72, 0.72, 0.75, 0.80, 0.87, 0.95, 1.00, 0.94, 0.75, 0.50,
)  # fmt: skip


def day_share(hour: float) -> float:
    """Share of the daily peak at `hour` in [0, 24), linearly interpolated between whole hours."""
    hour %= 24.0
    low = int(hour)
    high = (low + 1) % 24
    frac = hour - low
    return DIURNAL_HOURLY_SHARE[low] * (1 - frac) + DIURNAL_HOURLY_SHARE[high] * frac


def diurnal(p: LoadParams, t: float) -> Tick | None:
    """A whole day compressed into the duration, starting at midnight; `users` is the evening peak."""
    if t >= p.duration_s:
        return None
    hour = 24.0 * t / p.duration_s
    return Tick(max(1, round(p.users * day_share(hour))), p.spawn_rate)


PROFILES: dict[str, ProfileSpec] = {
    spec.name: spec
    for spec in (
        ProfileSpec("steady", "constant users for the whole duration", 10, 60.0, steady),
        ProfileSpec("ramp", "linear rise from 1 user to --users at the end", 20, 120.0, ramp),
        ProfileSpec(
            "spike", "20% of --users, a sudden spike to --users in the middle fifth, back", 30, 90.0, spike
        ),
        ProfileSpec("step", "five equal stairs up to --users", 25, 150.0, step),
        ProfileSpec("soak", "steady moderate load for a long time", 10, 1800.0, soak),
        ProfileSpec("diurnal", "a day's traffic curve compressed into the duration", 20, 600.0, diurnal),
    )
}
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


# ----------------------------------------------------------------------------------------------------
# Parsing and validation
# ----------------------------------------------------------------------------------------------------


def parse_duration(value: str | float | int, field: str = "duration") -> float:
    """A duration as a user types it (sample_shop.basics' one grammar: '90', '90s', '5m', '1h30m', '500ms',
    ...) -> seconds, more than 0 and at most MAX_DURATION_S; LoadConfigError names the field."""
    try:
        return basics.parse_duration(value, max_s=MAX_DURATION_S)
    except basics.DurationError as exc:
        raise LoadConfigError(field, str(exc)) from None


def _number(value: Any, field: str, kind: type[int] | type[float]) -> float:
    if isinstance(value, bool):
        raise LoadConfigError(field, f"expected a number, got {value!r}")
    try:
        number = kind(value) if not isinstance(value, str) else kind(value.strip())
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise LoadConfigError(field, f"expected {what}, got {value!r}") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise LoadConfigError(field, f"expected an integer, got {value!r}")
    if not math.isfinite(number):
        raise LoadConfigError(field, f"must be finite, got {value!r}")
    return number


def check_profile(name: Any) -> ProfileSpec:
    if not isinstance(name, str) or name not in PROFILES:
        raise LoadConfigError(
            "profile", f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}"
        )
    return PROFILES[name]


MAX_WORKERS = 16  # local worker processes; more than the machine's cores only adds overhead


def resolve_workers(value: Any) -> int:
    """`--workers`: 0 (the users run in the load process itself) up to MAX_WORKERS worker processes."""
    if value is None:
        return 0
    try:
        workers = int(value)
    except (TypeError, ValueError):
        raise LoadConfigError("workers", f"{value!r} is not a whole number (0..{MAX_WORKERS})") from None
    if not 0 <= workers <= MAX_WORKERS:
        raise LoadConfigError("workers", f"{workers} is outside 0..{MAX_WORKERS}")
    return workers


def resolve_params(
    profile: Any,
    users: Any = None,
    duration: Any = None,
    spawn_rate: Any = None,
    think_time_factor: Any = None,
    mix: Any = None,
) -> LoadParams:
    """Apply the profile's defaults to the given values and validate everything.

    Values may be strings (CLI, YAML, Chaos Toolkit configuration) or numbers. Raises LoadConfigError
    naming the parameter and, for a bad profile, listing the valid ones."""
    spec = check_profile(profile)
    n_users = spec.default_users if users is None else int(_number(users, "users", int))
    if not 1 <= n_users <= MAX_USERS:
        raise LoadConfigError("users", f"must be between 1 and {MAX_USERS}, got {users!r}")
    seconds = spec.default_duration_s if duration is None else parse_duration(duration)
    if spawn_rate is None:
        rate = spec.default_spawn_rate(n_users)
    else:
        rate = _number(spawn_rate, "spawn_rate", float)
        if not 0 < rate <= MAX_SPAWN_RATE:
            raise LoadConfigError(
                "spawn_rate", f"must be greater than 0 and at most {MAX_SPAWN_RATE:g}, got {spawn_rate!r}"
            )
    factor = 1.0 if think_time_factor is None else _number(think_time_factor, "think_time_factor", float)
    if not 0 <= factor <= MAX_THINK_TIME_FACTOR:
        raise LoadConfigError(
            "think_time_factor", f"must be between 0 and {MAX_THINK_TIME_FACTOR:g}, got {think_time_factor!r}"
        )
    try:
        journey_mix = check_mix(DEFAULT_MIX if mix is None else mix)
    except ValueError as exc:
        raise LoadConfigError("mix", str(exc)) from None
    return LoadParams(spec.name, n_users, seconds, rate, factor, journey_mix.name)


def params_from_mapping(data: Mapping[str, Any]) -> LoadParams:
    """LoadParams from a dict such as summary.json's `params` or an experiment's `load:` block."""
    known = {"profile", "users", "duration", "duration_s", "spawn_rate", "think_time_factor", "mix"}
    unknown = set(data) - known
    if unknown:
        raise LoadConfigError(
            sorted(unknown)[0],
            "unknown load parameter; valid: profile, users, duration, spawn_rate, think_time_factor, mix",
        )
    if "profile" not in data:
        raise LoadConfigError("profile", f"missing; valid profiles: {', '.join(PROFILE_NAMES)}")
    return resolve_params(
        data["profile"],
        data.get("users"),
        data.get("duration", data.get("duration_s")),
        data.get("spawn_rate"),
        data.get("think_time_factor"),
        data.get("mix"),
    )


def schedule_at(params: LoadParams, t: float) -> Tick | None:
    """The target at `t` seconds after the start (None when the run is over)."""
    return PROFILES[params.profile].schedule(params, t)


def peak_users(params: LoadParams, resolution_s: float = 1.0) -> int:
    """The largest user target the schedule asks for (sampled every `resolution_s`)."""
    steps = max(1, math.ceil(params.duration_s / resolution_s))
    ticks = (schedule_at(params, i * params.duration_s / steps) for i in range(steps))
    return max(tick.users for tick in ticks if tick is not None)
