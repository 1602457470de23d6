"""The noise guard's pure rule: which windows had a saturated instrument."""

from __future__ import annotations

import numpy as np

from slo.noise import (
    HOST_BUSY_SATURATED,
    HOST_WAITING_SATURATED,
    LOAD_CPU_SATURATED,
    check_window,
)


def test_a_quiet_window_is_reliable() -> None:
    check = check_window("fault", [0.4, 0.5, 0.6], [0.05, 0.1], [0.3, 0.35])
    assert check.reliable and check.measured and check.reason() == ""
    assert check.host_busy_mean == 0.5


def test_each_instrument_alone_makes_a_window_unreliable() -> None:
    busy = check_window("baseline", [HOST_BUSY_SATURATED] * 5, None, None)
    waiting = check_window("baseline", None, [HOST_WAITING_SATURATED + 0.1] * 5, None)
    load = check_window("baseline", None, None, [LOAD_CPU_SATURATED] * 5)
    for check in (busy, waiting, load):
        assert not check.reliable
        assert "baseline" in check.reason()
    assert "load generator at 90% of a core" in load.reason()


def test_a_short_spike_is_not_saturation_but_a_window_at_the_ceiling_is() -> None:
    spike = np.r_[np.full(18, 0.5), [1.0, 1.0]]
    assert check_window("fault", spike, None, None).reliable
    assert not check_window("fault", np.full(20, 0.99), None, None).reliable


def test_nothing_measured_is_reported_as_such_not_as_saturated() -> None:
    check = check_window("fault", None, [], [float("nan")])
    assert not check.measured and check.reliable
    assert check.to_dict()["host_busy_mean"] is None
