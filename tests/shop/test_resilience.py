"""The outbound client's pure parts: breaker state machine, backoff schedule, replica balancer."""

from __future__ import annotations

import random

import pytest

from sample_shop.kit.resilience import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    RoundRobinBalancer,
    backoff_delay_s,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **kw: float) -> CircuitBreaker:
    settings = BreakerSettings(
        **{"window_s": 10, "min_calls": 4, "failure_ratio": 0.5, "open_s": 5, "half_open_calls": 1, **kw}
    )
    return CircuitBreaker(settings, clock)


def test_breaker_stays_closed_below_min_calls_even_if_all_fail() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        assert b.allow()
        b.record(False)
    assert b.state is BreakerState.CLOSED


def test_breaker_opens_at_failure_ratio_and_fails_fast() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    b = breaker(clock)
    b.on_change = changes.append
    for ok in (True, False, True, False):
        assert b.allow()
        b.record(ok)
    assert b.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]
    assert not b.allow()


def test_breaker_below_ratio_stays_closed() -> None:
    clock = Clock()
    b = breaker(clock)
    for ok in (True, True, True, False, True, True):
        b.allow()
        b.record(ok)
    assert b.state is BreakerState.CLOSED


def test_breaker_window_forgets_old_failures() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.allow()
        b.record(False)
    clock.now += 11  # the three failures leave the 10 s window
    for ok in (True, True, True, False):
        b.allow()
        b.record(ok)
    assert b.state is BreakerState.CLOSED


def test_half_open_admits_limited_probes_success_closes() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        b.allow()
        b.record(False)
    clock.now += 4.9
    assert b.state is BreakerState.OPEN
    clock.now += 0.2
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # only one probe at a time
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert b.allow()


def test_half_open_failure_reopens_for_a_full_period() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        b.allow()
        b.record(False)
    clock.now += 5
    assert b.allow()
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.now += 4
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_backoff_is_full_jitter_capped_exponential() -> None:
    rng = random.Random(7)
    for retry, ceiling in ((1, 0.05), (2, 0.1), (3, 0.2), (4, 0.4), (8, 1.0)):
        samples = [backoff_delay_s(retry, 0.05, 1.0, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling + 1e-12 for s in samples)
        assert max(samples) > ceiling * 0.8  # really spread up to the ceiling
        assert min(samples) < ceiling * 0.2


def test_backoff_zero_base_retries_at_once_and_rejects_bad_retry() -> None:
    assert backoff_delay_s(3, 0.0, 0.0, random.Random()) == 0.0
    with pytest.raises(ValueError):
        backoff_delay_s(0, 0.1, 1.0, random.Random())


def test_balancer_round_robin_and_ejection() -> None:
    clock = Clock()
    lb = RoundRobinBalancer(["a", "b", "c"], clock)
    assert [lb.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    lb.eject("b", 2.0)
    assert [lb.pick() for _ in range(4)] == ["a", "c", "a", "c"]
    assert lb.healthy() == ["a", "c"]
    clock.now += 2.0
    assert sorted({lb.pick() for _ in range(3)}) == ["a", "b", "c"]


def test_balancer_avoids_the_replica_that_just_failed_and_survives_all_ejected() -> None:
    clock = Clock()
    lb = RoundRobinBalancer(["a", "b"], clock)
    assert lb.pick(avoid="a") == "b"
    assert lb.pick(avoid="b") == "a"
    lb.eject("a", 5)
    lb.eject("b", 5)
    assert lb.pick() in ("a", "b")  # better a try than a certain failure
    single = RoundRobinBalancer(["only"], clock)
    assert single.pick(avoid="only") == "only"
    with pytest.raises(ValueError):
        RoundRobinBalancer([], clock)
