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


def _latency_result(statuses: dict[str, str]):
    from slo.evaluate import SloResult, WindowResult

    rows = [
        WindowResult(name, 0, 60, status, 95, 100, 0.95, 1.0, 0.01, f"{status} after 40 events", True)
        for name, status in statuses.items()
    ]
    overall = WindowResult("+".join(statuses), 0, 180, "met", 285, 300, 0.95, 1.0, 0.01, "", True)
    status = "breached" if "breached" in statuses.values() else "met"
    return SloResult(
        "browse-latency-client", "x", "browse", "client", "latency", 0.95, 0.5, 3600, False, 10, "f",
        status, {"method": "sprt"}, rows, overall,
    )  # fmt: skip


def test_a_saturated_window_turns_a_latency_pass_or_breach_into_unreliable() -> None:
    from slo.evaluate import guard_latency

    noisy = {
        "baseline": check_window("baseline", [0.3], [0.05], [0.1]),
        "fault": check_window("fault", [1.0], [0.98], [0.1]),
    }
    passed = _latency_result({"baseline": "met", "fault": "met"})
    guard_latency(passed, noisy)
    assert passed.status == "unreliable"  # never a silent pass
    assert passed.windows[0].status == "met" and passed.windows[1].status == "unreliable"
    assert "fault" in passed.windows[1].reason and "the rule said met" in passed.windows[1].reason
    breached = _latency_result({"baseline": "met", "fault": "breached"})
    guard_latency(breached, noisy)
    assert breached.status == "unreliable"  # never a silent breach either
    real = _latency_result({"baseline": "breached", "fault": "met"})
    guard_latency(real, noisy)
    assert real.status == "breached"  # a breach on a quiet machine stands


def test_availability_verdicts_are_not_touched_by_the_guard() -> None:
    from slo.evaluate import guard_latency

    result = _latency_result({"fault": "met"})
    result.kind = "availability"
    guard_latency(result, {"fault": check_window("fault", [1.0], [1.0], [1.0])})
    assert result.status == "met"
