"""Multiwindow, multi-burn-rate alert windows scaled to an SLO period (pure: numbers in, numbers out).

The SRE workbook's windows are defined for a 30-day SLO (page: 1h & 5m at 14.4x, 6h & 30m at 6x;
ticket: 1d & 2h at 3x, 3d & 6h at 1x). For another period W they scale with it: long windows W/720,
W/120, W/30, W/10 of a 30-day month are W/672, W/112, W/28, W/7 of the 28-day form used by Sloth (and
docs/slo.md), short windows W/8064, W/1344, W/336, W/112 (= long / 12). Windows shorter than a few
scrape intervals hold too few samples for rate(), so each window has a floor of 4 scrape intervals.

A burn-rate factor f fires when the error ratio exceeds f * B. Since an error ratio cannot exceed 1,
a factor above 1/B could never fire: factors are capped at 1/B (documented in docs/slo.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Severity = Literal["page", "ticket"]

# (severity, long-window fraction of the period, short-window fraction, burn-rate factor)
SRE_BURN_RATE_TABLE: tuple[tuple[Severity, int, int, float], ...] = (
    ("page", 672, 8064, 14.4),
    ("page", 112, 1344, 6.0),
    ("ticket", 28, 336, 3.0),
    ("ticket", 7, 112, 1.0),
)
MIN_SCRAPES_PER_WINDOW = 4


@dataclass(frozen=True)
class BurnRateWindow:
    severity: Severity
    long_s: int
    short_s: int
    factor: float  # capped at 1/B

    def threshold(self, error_budget: float) -> float:
        """Error ratio above which this window pair burns too fast: factor * B."""
        return self.factor * error_budget


def window_floor_s(scrape_interval_s: float) -> int:
    return max(1, math.ceil(MIN_SCRAPES_PER_WINDOW * scrape_interval_s))


def scale_window(period_s: float, divisor: int, floor_s: int) -> int:
    """A window of period/divisor, rounded up to whole seconds, never below the floor."""
    if period_s <= 0 or divisor <= 0:
        raise ValueError("period and divisor must be positive")
    return max(floor_s, math.ceil(period_s / divisor))


def burn_rate_windows(
    period_s: float, error_budget: float, scrape_interval_s: float
) -> tuple[BurnRateWindow, ...]:
    """The four (long, short, factor) alert conditions for an SLO period, scaled and floored."""
    if not 0.0 < error_budget < 1.0:
        raise ValueError(f"error budget must be in (0, 1), got {error_budget}")
    if scrape_interval_s <= 0:
        raise ValueError("scrape interval must be positive")
    floor = window_floor_s(scrape_interval_s)
    max_factor = 1.0 / error_budget
    out = []
    for severity, long_div, short_div, factor in SRE_BURN_RATE_TABLE:
        long_s = scale_window(period_s, long_div, floor)
        short_s = min(scale_window(period_s, short_div, floor), long_s)
        out.append(BurnRateWindow(severity, long_s, short_s, min(factor, max_factor)))
    return tuple(out)


def distinct_windows(windows: tuple[BurnRateWindow, ...]) -> tuple[int, ...]:
    """Every window length used by the alert conditions, ascending, without repeats."""
    return tuple(sorted({w.long_s for w in windows} | {w.short_s for w in windows}))
