"""SLO arithmetic and window scaling against hand-computed cases (pure, no servers)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sample_shop.basics import prom_duration
from slo import maths
from slo.windows import burn_rate_windows, distinct_windows, scale_window, window_floor_s


def test_sli_budget_burn_rate_by_hand() -> None:
    # 990 good of 1000 at target 99.5 %: SLI 0.99, budget 0.005, burn rate (1 - 0.99) / 0.005 = 2
    assert maths.sli(990, 1000) == pytest.approx(0.99)
    assert maths.error_budget(0.995) == pytest.approx(0.005)
    assert maths.burn_rate(0.99, 0.995) == pytest.approx(2.0)
    # a 6-minute window of a 1-hour period burning at 2x uses 2 * 6/60 = 20 % of the budget
    assert maths.budget_consumed(990, 1000, 0.995, 360, 3600) == pytest.approx(0.2)
    # windows longer than the period count as the period
    assert maths.budget_consumed(990, 1000, 0.995, 7200, 3600) == pytest.approx(2.0)


def test_zero_traffic_is_no_data_never_a_pass() -> None:
    assert maths.sli(0, 0) is None
    j = maths.judge(0, 0, 0.99, min_events=10, window_s=60, period_s=3600)
    assert j.status == "nodata" and j.sli is None and "no events" in j.reason


def test_too_few_events_is_no_data_even_when_perfect() -> None:
    j = maths.judge(5, 5, 0.99, min_events=10, window_s=60, period_s=3600)
    assert j.status == "nodata"
    assert j.sli == 1.0  # the value is still reported
    assert "fewer than the minimum of 10" in j.reason


def test_met_and_breached_at_the_boundary() -> None:
    assert maths.judge(99, 100, 0.99, 10, 60, 3600).status == "met"  # exactly on target
    assert maths.judge(98, 100, 0.99, 10, 60, 3600).status == "breached"


@pytest.mark.parametrize("bad", [(-1, 10), (1, -10)])
def test_negative_counts_are_rejected(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        maths.sli(*bad)


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.1])
def test_target_outside_open_unit_interval_is_rejected(target: float) -> None:
    with pytest.raises(ValueError):
        maths.error_budget(target)


def test_worst_status() -> None:
    assert maths.worst_status(["met", "met"]) == "met"
    assert maths.worst_status(["met", "nodata"]) == "nodata"
    assert maths.worst_status(["nodata", "breached", "met"]) == "breached"
    assert maths.worst_status([]) == "nodata"


def test_cumulative_events_handles_resets_and_new_series() -> None:
    grid = np.arange(0.0, 6.0)
    # counter 10, 12, reset to 1, 3 -> increments 2, 1 (reset counts the new value), 2 => 5 after t=0
    a = (np.array([0.0, 1.0, 2.0, 3.0]), np.array([10.0, 12.0, 1.0, 3.0]))
    # a series created at t=4 with value 2 (its first events count), then 5
    b = (np.array([4.0, 5.0]), np.array([2.0, 5.0]))
    cum = maths.cumulative_events(grid, [a, b])
    assert cum.tolist() == [0.0, 2.0, 3.0, 5.0, 7.0, 10.0]
    assert maths.window_count(grid, cum, 0.0, 5.0) == 10.0
    assert maths.window_count(grid, cum, 1.5, 3.5) == 3.0  # samples at 1 and 3 bound the window


def test_cumulative_events_carries_a_dead_series_forward() -> None:
    grid = np.arange(0.0, 5.0)
    a = (np.array([0.0, 1.0, 2.0]), np.array([0.0, 4.0, 6.0]))  # the process dies after t=2
    cum = maths.cumulative_events(grid, [a])
    assert cum.tolist() == [0.0, 4.0, 6.0, 6.0, 6.0]


def test_sliding_sli_and_time_to_recover() -> None:
    grid = np.arange(0.0, 21.0)
    total = grid * 10  # 10 requests per second
    bad_per_s = np.where((grid > 5) & (grid <= 10), 10, 0)  # every request fails in (5, 10]
    good = total - np.cumsum(bad_per_s)
    ratio, events = maths.sliding_sli(grid, good, total, 4.0)
    assert events[4] == 40 and ratio[4] == 1.0
    assert ratio[9] == 0.0  # (5, 9]: all bad
    assert ratio[8] == 0.25  # (4, 8]: t=5 good, 6..8 bad
    # fault removed at t=10: the first 4 s window starting at or after 10 is (10, 14] -> healthy at once
    assert maths.time_to_recover(grid, good, total, 10.0, 20.0, 4.0, 0.99, 5) == 0.0
    # with failures lasting 3 s beyond the removal (until t=13) the first clean window starts at 13
    bad_late = np.where((grid > 5) & (grid <= 13), 10, 0)
    good_late = total - np.cumsum(bad_late)
    assert maths.time_to_recover(grid, good_late, total, 10.0, 20.0, 4.0, 0.99, 5) == 3.0
    # never recovers within the data
    assert maths.time_to_recover(grid, good_late, total, 10.0, 15.0, 4.0, 0.99, 5) is None


def test_time_to_detect() -> None:
    times = np.arange(0.0, 10.0)
    firing = [False, False, False, False, False, False, True, True, False, False]
    assert maths.time_to_detect(times, firing, 2.0, 9.0) == 4.0
    assert maths.time_to_detect(times, firing, 7.0, 9.0) == 0.0  # already firing when the fault starts
    assert maths.time_to_detect(times, [False] * 10, 2.0, 9.0) is None


# --------------------------------------------------------------------------------------------------
# Window scaling
# --------------------------------------------------------------------------------------------------


def test_windows_for_thirty_days_match_the_sre_workbook() -> None:
    w = burn_rate_windows(28 * 86400, 0.001, scrape_interval_s=15)
    assert [(x.long_s, x.short_s, x.factor) for x in w] == [
        (3600, 300, 14.4),
        (21600, 1800, 6.0),
        (86400, 7200, 3.0),
        (345600, 21600, 1.0),
    ]
    assert [x.severity for x in w] == ["page", "page", "ticket", "ticket"]


def test_windows_scale_to_one_hour_with_a_floor() -> None:
    w = burn_rate_windows(3600, 0.01, scrape_interval_s=1)
    # long: ceil(3600/672)=6, ceil(3600/112)=33, ceil(3600/28)=129, ceil(3600/7)=515
    # short: 3600/8064 and 3600/1344 fall below the 4 s floor; ceil(3600/336)=11; 33
    assert [(x.long_s, x.short_s) for x in w] == [(6, 4), (33, 4), (129, 11), (515, 33)]
    assert distinct_windows(w) == (4, 6, 11, 33, 129, 515)
    assert window_floor_s(2.0) == 8


def test_factors_are_capped_at_one_over_budget() -> None:
    # target 0.9: budget 0.1, 1/B = 10 < 14.4
    w = burn_rate_windows(3600, 0.1, 1)
    assert [x.factor for x in w] == [10.0, 6.0, 3.0, 1.0]
    assert all(x.factor <= 1 / 0.1 + 1e-12 for x in w)
    assert all(x.threshold(0.1) <= 1.0 + 1e-12 for x in w)


def test_short_window_never_exceeds_long_window() -> None:
    for period in (60, 600, 3600, 86400):
        for x in burn_rate_windows(period, 0.01, 5):
            assert x.short_s <= x.long_s


@pytest.mark.parametrize(("bad", "args"), [("budget", (3600, 0.0, 1)), ("budget", (3600, 1.0, 1))])
def test_window_input_validation(bad: str, args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match=bad):
        burn_rate_windows(*args)
    with pytest.raises(ValueError):
        scale_window(0, 7, 4)


def test_promql_duration() -> None:
    assert prom_duration(3600) == "1h"
    assert prom_duration(120) == "2m"
    assert prom_duration(515) == "515s"
    assert prom_duration(86400) == "1d"
    with pytest.raises(ValueError):
        prom_duration(0)


# --------------------------------------------------------------------------------------------------
# Verdict over several judged windows (slo/evaluate.py; pure)
# --------------------------------------------------------------------------------------------------


def _row(window: str, good: float, total: float, status: str):
    from slo.evaluate import WindowResult
    from slo.sources import Window

    j = maths.judge(good, total, 0.99, 1, 60, 3600)
    row = WindowResult.of(Window(window, 0, 60), j, True)
    row.status = status
    return row


def _verdict(rows):
    from slo.evaluate import _verdict

    return _verdict(rows)


def test_an_slo_is_met_only_when_every_judged_window_is_met() -> None:
    met = [_row("baseline", 300, 300, "met"), _row("fault", 300, 300, "met")]
    assert _verdict(met)[0] == "met"
    thin = [_row("baseline", 300, 300, "met"), _row("fault", 7, 7, "inconclusive")]
    status, notes = _verdict(thin)
    assert status == "inconclusive"  # the old rule judged the phases together and passed
    assert notes and notes[0].startswith("fault:")


def test_one_breached_window_breaches_the_slo() -> None:
    rows = [
        _row("baseline", 300, 300, "met"),
        _row("fault", 0, 7, "breached"),
        _row("recovery", 0, 0, "nodata"),
    ]
    assert _verdict(rows)[0] == "breached"


def test_no_events_anywhere_is_no_data() -> None:
    rows = [_row("baseline", 0, 0, "nodata"), _row("fault", 0, 0, "nodata")]
    assert _verdict(rows)[0] == "nodata"
    assert maths.worst_status(["met", "inconclusive"]) == "inconclusive"
    assert maths.worst_status(["inconclusive", "nodata"]) == "nodata"


def test_window_path_counts_from_the_window_start() -> None:
    grid = np.arange(0.0, 10.0)
    cum = np.arange(0.0, 100.0, 10.0)  # 10 events a second
    times, counts = maths.window_path(grid, cum, 2.0, 5.0)
    assert list(times) == [3.0, 4.0, 5.0] and list(counts) == [10.0, 20.0, 30.0]
    times, counts = maths.window_path(grid, cum, 2.0, 5.5)
    assert times[-1] == 5.5 and counts[-1] == 30.0


# --------------------------------------------------------------------------------------------------
# Properties of the counting (hypothesis)
# --------------------------------------------------------------------------------------------------

increments = st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(increments, st.integers(min_value=0, max_value=59), st.integers(min_value=0, max_value=59))
def test_window_counts_are_additive_and_exact(steps: list[int], a: int, b: int) -> None:
    n = len(steps)
    grid = np.arange(float(n))
    values = np.cumsum(steps).astype(float)
    cum = maths.cumulative_events(grid, [(grid, values)])
    lo, hi = sorted((min(a, n - 1), min(b, n - 1)))
    mid = (lo + hi) // 2
    whole = maths.window_count(grid, cum, lo, hi)
    assert whole == sum(steps[lo + 1 : hi + 1])  # events in (lo, hi]
    assert whole == maths.window_count(grid, cum, lo, mid) + maths.window_count(grid, cum, mid, hi)


@settings(max_examples=60, deadline=None)
@given(increments, st.integers(min_value=1, max_value=58))
def test_a_reset_loses_no_events(steps: list[int], cut: int) -> None:
    """A process restart mid-way (counter back to zero) counts the same events as an unbroken counter."""
    cut = min(cut, len(steps) - 1)
    grid = np.arange(float(len(steps)))
    unbroken = np.cumsum(steps).astype(float)
    restarted = np.concatenate([np.cumsum(steps[:cut]), np.cumsum(steps[cut:])]).astype(float)
    if restarted[cut] >= restarted[cut - 1]:
        return  # no visible drop: indistinguishable from no restart (Prometheus' limitation too)
    a = maths.cumulative_events(grid, [(grid, unbroken)])
    b = maths.cumulative_events(grid, [(grid, restarted)])
    assert a[-1] == b[-1]
