"""The load profiles' schedules and parameter validation: pure functions, no Locust, no servers."""

from __future__ import annotations

import itertools
import math

import pytest

from load.profiles import (
    DIURNAL_HOURLY_SHARE,
    MAX_USERS,
    PROFILE_NAMES,
    LoadConfigError,
    LoadParams,
    day_share,
    params_from_mapping,
    parse_duration,
    peak_users,
    resolve_params,
    schedule_at,
)
from sample_shop.basics import format_duration


def users_over_time(params: LoadParams, step_s: float = 0.5) -> list[int]:
    out = []
    t = 0.0
    while (tick := schedule_at(params, t)) is not None:
        out.append(tick.users)
        t += step_s
    return out


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_profile_stops_at_its_duration_and_never_drops_below_one_user(profile: str) -> None:
    params = resolve_params(profile, users=40, duration="100s")
    assert schedule_at(params, 99.9) is not None
    assert schedule_at(params, 100.0) is None
    assert schedule_at(params, 1e6) is None
    series = users_over_time(params)
    assert len(series) == 200
    assert min(series) >= 1
    assert max(series) <= 40
    assert peak_users(params) == max(series)


def test_steady_and_soak_hold_the_user_count() -> None:
    for profile in ("steady", "soak"):
        assert set(users_over_time(resolve_params(profile, users=7, duration="30s"))) == {7}


def test_ramp_rises_monotonically_to_the_peak() -> None:
    series = users_over_time(resolve_params("ramp", users=50, duration="100s"))
    assert series[0] == 1
    assert all(a <= b for a, b in itertools.pairwise(series))
    assert series[-1] == 50
    assert series[len(series) // 2] == 25  # linear: half way, half the users


def test_spike_is_baseline_peak_baseline_with_fast_spawn() -> None:
    params = resolve_params("spike", users=50, duration="100s", spawn_rate=2)
    assert schedule_at(params, 10).users == 10  # 20 % baseline
    peak = schedule_at(params, 45)
    assert peak.users == 50 and peak.spawn_rate >= 50  # arrives at once, not at 2 users/s
    assert schedule_at(params, 39.9).users == 10
    assert schedule_at(params, 60.0).users == 10
    assert schedule_at(params, 61).spawn_rate >= 50  # and leaves at once


def test_step_has_five_equal_stairs() -> None:
    params = resolve_params("step", users=25, duration="50s")
    assert [schedule_at(params, t).users for t in (0, 9.9, 10, 25, 35, 49.9)] == [5, 5, 10, 15, 20, 25]


def test_diurnal_is_a_day_with_a_night_trough_and_an_evening_peak() -> None:
    params = resolve_params("diurnal", users=100, duration="240s")  # 10 s per hour of day
    hour = lambda h: schedule_at(params, h * 10).users  # noqa: E731
    assert hour(20) == 100  # evening peak
    assert hour(4) == 8  # before dawn
    assert hour(4) < hour(9) < hour(12) < hour(20)
    assert day_share(23.5) == pytest.approx((DIURNAL_HOURLY_SHARE[23] + DIURNAL_HOURLY_SHARE[0]) / 2)
    assert max(DIURNAL_HOURLY_SHARE) == 1.0 and len(DIURNAL_HOURLY_SHARE) == 24


def test_defaults_apply_per_profile() -> None:
    p = resolve_params("soak")
    assert (p.users, p.duration_s, p.spawn_rate, p.think_time_factor) == (10, 1800.0, 2.0, 1.0)
    assert resolve_params("steady", users="3").spawn_rate == 1.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        (" 2M ", 120),
        ("1d", 86400),  # the one duration grammar (sample_shop.basics) has days; 24 h is the limit
        (7, 7),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-5s", "0", "0s", "2d", "s", "25h", "5m3", True, math.inf])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(LoadConfigError) as err:
        parse_duration(text)  # type: ignore[arg-type]
    assert err.value.field == "duration"


def test_format_duration_round_trips() -> None:
    for seconds in (1, 59, 60, 61, 3600, 5400, 86400, 1.5):
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"profile": "bursty"}, "profile", "valid profiles: steady, ramp, spike, step, soak, diurnal"),
        ({"profile": None}, "profile", "valid profiles"),
        ({"profile": "steady", "users": 0}, "users", f"between 1 and {MAX_USERS}"),
        ({"profile": "steady", "users": "ten"}, "users", "expected an integer"),
        ({"profile": "steady", "users": 2.5}, "users", "expected an integer"),
        ({"profile": "steady", "users": True}, "users", "expected a number"),
        ({"profile": "steady", "duration": "soon"}, "duration", "500ms, 90s, 5m, 1h30m"),
        ({"profile": "steady", "spawn_rate": 0}, "spawn_rate", "greater than 0"),
        ({"profile": "steady", "spawn_rate": "nan"}, "spawn_rate", "finite"),
        ({"profile": "steady", "think_time_factor": -1}, "think_time_factor", "between 0 and 10"),
    ],
)
def test_bad_parameters_name_the_field_and_the_valid_values(kwargs: dict, field: str, fragment: str) -> None:
    with pytest.raises(LoadConfigError) as err:
        resolve_params(**kwargs)
    assert err.value.field == field
    assert fragment in str(err.value)


def test_params_from_mapping_accepts_experiment_blocks_and_rejects_unknown_keys() -> None:
    p = params_from_mapping({"profile": "spike", "users": "12", "duration": "30s"})
    assert (p.profile, p.users, p.duration_s) == ("spike", 12, 30.0)
    assert params_from_mapping(p.to_dict()) == p  # summary.json's params round-trip
    with pytest.raises(LoadConfigError, match="usres"):
        params_from_mapping({"profile": "steady", "usres": 3})
    with pytest.raises(LoadConfigError, match="missing"):
        params_from_mapping({"users": 3})
