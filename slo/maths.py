"""SLO arithmetic, pure: numbers and arrays in, numbers out. No HTTP, no files, no clock.

Formulas (docs/slo.md, "Judging"; the Google SRE workbook, "Alerting on SLOs"): SLI = good / total; error
budget B = 1 - target; burn rate over a window = (1 - SLI) / B; budget consumed by a window = bad events /
(B * events expected over the period), the expectation extrapolating the window's traffic rate to the whole
period. Zero traffic and fewer events than the minimum give an explicit "nodata" judgement: never a pass.

Counter series become cumulative event counts with `cumulative_events` (resets handled, new series
counted from zero), and window counts are differences of that cumulative curve, so the live gate and
the run-folder gate compute exactly the same numbers from the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

# inconclusive: there were events, but too few to decide at the rule's confidence (slo/sequential.py);
# unreliable: a latency verdict from a window whose measuring instruments were saturated (slo/noise.py)
Status = Literal["met", "breached", "inconclusive", "unreliable", "nodata"]
FloatArray = npt.NDArray[np.float64]


def sli(good: float, total: float) -> float | None:
    """good / total, or None when there were no events (no data is not 100 %)."""
    if total < 0 or good < 0:
        raise ValueError(f"event counts cannot be negative (good={good}, total={total})")
    if total == 0:
        return None
    return min(1.0, good / total)


def error_budget(target: float) -> float:
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    return 1.0 - target


def burn_rate(sli_value: float, target: float) -> float:
    """How many times faster than sustainable the budget burns: (1 - SLI) / (1 - target)."""
    return (1.0 - sli_value) / error_budget(target)


def budget_consumed(
    good: float, total: float, target: float, window_s: float, period_s: float
) -> float | None:
    """Share of the whole period's error budget used by the bad events of this window (1.0 = all of it).

    The period's event count is unknown from a short window, so it is extrapolated from the window's
    traffic rate: consumed = bad / (B * total * period / window) = burn_rate * window / period.
    Windows longer than the period are judged as the period itself."""
    value = sli(good, total)
    if value is None:
        return None
    if window_s <= 0 or period_s <= 0:
        raise ValueError("window and period must be positive")
    return burn_rate(value, target) * min(1.0, window_s / period_s)


@dataclass(frozen=True)
class Judgement:
    status: Status
    good: float
    total: float
    sli: float | None
    burn_rate: float | None
    budget_consumed: float | None
    reason: str


def judge(
    good: float, total: float, target: float, min_events: int, window_s: float, period_s: float
) -> Judgement:
    """Met when SLI >= target over at least `min_events` events; otherwise breached or nodata."""
    value = sli(good, total)
    if value is None:
        reason = "no events in the window (zero traffic or no series)"
        return Judgement("nodata", good, total, None, None, None, reason)
    br = burn_rate(value, target)
    consumed = budget_consumed(good, total, target, window_s, period_s)
    if total < min_events:
        return Judgement(
            "nodata",
            good,
            total,
            value,
            br,
            consumed,
            f"only {total:g} events, fewer than the minimum of {min_events} needed to judge",
        )
    if value >= target:
        return Judgement("met", good, total, value, br, consumed, f"SLI {value:.4%} >= target {target:.4%}")
    return Judgement("breached", good, total, value, br, consumed, f"SLI {value:.4%} < target {target:.4%}")


def worst_status(statuses: Sequence[Status]) -> Status:
    """breached beats nodata beats unreliable beats inconclusive beats met: a definite failure is
    reported as such; missing, untrustworthy and undecided data never pass."""
    if not statuses:
        return "nodata"
    worst_first: tuple[Status, ...] = ("breached", "nodata", "unreliable", "inconclusive")
    for status in worst_first:
        if status in statuses:
            return status
    return "met"


# --------------------------------------------------------------------------------------------------
# Counter samples -> cumulative events -> window counts
# --------------------------------------------------------------------------------------------------


def cumulative_events(
    grid: FloatArray, series: Sequence[tuple[FloatArray, FloatArray]], data_start: float | None = None
) -> FloatArray:
    """Sum of several counter series as one cumulative event count on `grid` (ascending timestamps).

    Each series is (timestamps, values) of one counter, as a range query returns it. Per series:
    a drop in value is a counter reset (the new value counts in full); a series whose first sample comes
    after `data_start` (default: grid[0]) was created then and starts from 0, so its first value counts
    (Prometheus' increase() drops it, which undercounts the first errors of a new status class);
    between and after samples the last value carries forward (a dead process loses no past events)."""
    grid = np.asarray(grid, dtype=float)
    start = grid[0] if data_start is None and len(grid) else data_start
    total = np.zeros(len(grid), dtype=float)
    for ts, vals in series:
        ts = np.asarray(ts, dtype=float)
        vals = np.asarray(vals, dtype=float)
        keep = ~np.isnan(vals)
        ts, vals = ts[keep], vals[keep]
        if len(ts) == 0:
            continue
        order = np.argsort(ts, kind="stable")
        ts, vals = ts[order], vals[order]
        deltas = np.diff(vals)
        increments = np.where(deltas >= 0, deltas, vals[1:])  # a reset restarts from zero
        baseline = vals[0] if ts[0] <= start else 0.0  # created after the start: its first value counts
        cum = np.concatenate(([vals[0] - baseline], vals[0] - baseline + np.cumsum(increments)))
        idx = np.searchsorted(ts, grid, side="right") - 1  # last sample at or before each grid point
        total += np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0)
    return total


def value_at(grid: FloatArray, cumulative: FloatArray, t: float) -> float:
    """The cumulative count at time t (last grid point at or before t; 0 before the grid)."""
    i = int(np.searchsorted(grid, t, side="right")) - 1
    return float(cumulative[i]) if i >= 0 else 0.0


def window_count(grid: FloatArray, cumulative: FloatArray, start: float, end: float) -> float:
    """Events in (start, end]."""
    if end < start:
        raise ValueError(f"window end {end} is before its start {start}")
    return max(0.0, value_at(grid, cumulative, end) - value_at(grid, cumulative, start))


def window_path(
    grid: FloatArray, cumulative: FloatArray, start: float, end: float
) -> tuple[FloatArray, FloatArray]:
    """The events counted from `start`, at every grid point in (start, end] (and at `end`): the path the
    sequential rule walks. Returns (times, cumulative counts since start)."""
    grid = np.asarray(grid, dtype=float)
    inside = (grid > start + 1e-9) & (grid <= end + 1e-9)
    times = grid[inside]
    if not len(times) or times[-1] < end - 1e-9:
        times = np.append(times, end)
    cumulative = np.asarray(cumulative, dtype=float)
    idx = np.searchsorted(grid, times, side="right") - 1
    counts = np.where(idx >= 0, cumulative[np.clip(idx, 0, None)], 0.0) - value_at(grid, cumulative, start)
    return times, np.maximum.accumulate(np.maximum(counts, 0.0))


def sliding_sli(
    grid: FloatArray, good_cum: FloatArray, total_cum: FloatArray, window_s: float
) -> tuple[FloatArray, FloatArray]:
    """SLI and event count of the window (t - window_s, t] at every grid point t (NaN without events)."""
    grid = np.asarray(grid, dtype=float)
    idx = np.searchsorted(grid, grid - window_s, side="right") - 1
    prev_good = np.where(idx >= 0, good_cum[np.clip(idx, 0, None)], 0.0)
    prev_total = np.where(idx >= 0, total_cum[np.clip(idx, 0, None)], 0.0)
    total = total_cum - prev_total
    good = good_cum - prev_good
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, np.minimum(1.0, good / np.where(total > 0, total, 1.0)), np.nan)
    return ratio, total


def time_to_detect(
    alert_times: FloatArray, firing: Sequence[bool] | npt.NDArray[np.bool_], fault_start: float, until: float
) -> float | None:
    """Seconds from fault start to the first sample in [fault_start, until] at which an alert fires.
    0 when it was already firing at the start; None when it never fired in that span."""
    times = np.asarray(alert_times, dtype=float)
    fire = np.asarray(firing, dtype=bool)
    hits = times[fire & (times >= fault_start) & (times <= until)]
    return float(hits.min() - fault_start) if len(hits) else None


def time_to_recover(
    grid: FloatArray,
    good_cum: FloatArray,
    total_cum: FloatArray,
    fault_end: float,
    until: float,
    window_s: float,
    target: float,
    min_events: int,
) -> float | None:
    """Seconds from fault removal to the start of the first window [s, s + window_s], s >= fault_end,
    whose SLI is at or above the target with at least `min_events` events: from then on users were fine.
    0 when the shop was fine right after removal; None when no such window ends by `until`."""
    grid = np.asarray(grid, dtype=float)
    ratio, events = sliding_sli(grid, good_cum, total_cum, window_s)
    starts = grid - window_s
    ok = (starts >= fault_end - 1e-9) & (grid <= until) & (events >= min_events) & (ratio >= target)
    hits = starts[ok]
    return float(max(0.0, hits.min() - fault_end)) if len(hits) else None
