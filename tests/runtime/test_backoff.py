"""The restart policy (pure): fast first restart, doubling, capped, reset after a stable run."""

from __future__ import annotations

import pytest

from testbed.runtime.backoff import RestartPolicy


def test_delays_double_from_half_a_second_up_to_the_cap() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_stable_run_resets_the_crash_count() -> None:
    policy = RestartPolicy(stable_after_s=10.0)
    assert policy.crashes_after(previous_crashes=4, ran_for_s=0.2) == 5
    assert policy.crashes_after(previous_crashes=4, ran_for_s=9.9) == 5
    assert policy.crashes_after(previous_crashes=4, ran_for_s=10.0) == 1


def test_delay_needs_a_crash() -> None:
    with pytest.raises(ValueError, match="consecutive_crashes must be >= 1"):
        RestartPolicy().delay(0)
