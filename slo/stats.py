"""Kayenta-like statistical comparison, pure: samples in, classifications and a score out.

Per metric: a two-sided Mann-Whitney U test (98 % confidence by default) between a baseline and a
candidate sample, and the Hodges-Lehmann estimate of the shift (median of all pairwise differences
candidate - baseline) with its distribution-free confidence interval. A metric is
  high / low  when the difference is significant AND the shift exceeds the tolerance,
  pass        otherwise,
  nodata      when either sample has fewer than `min_samples` values, or the two are too small for the
              test to ever reject at this confidence (the smallest two-sided p-value of the exact test
              for sizes n and m is 2 / C(n + m, n): 3 against 5 slices can never go below 0.036, so at
              98 % confidence such a comparison could only ever "pass" - that would be a silent pass).
A metric has a failing direction ("decrease" for an SLI: lower is worse; "increase" for a latency or an
error ratio; "either"); a significant move the other way counts as a pass, as in Kayenta.

Score per group = 100 * passes / metrics; summary = weighted mean of group scores; verdict Pass >= 75,
Marginal >= 50, else Fail. A failed critical metric, or no data for at least half the metrics, scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Sample = Sequence[float] | npt.NDArray[np.float64]  # one sample of a metric: a list or an array

Classification = Literal["pass", "high", "low", "nodata"]
Direction = Literal["increase", "decrease", "either"]
Verdict = Literal["pass", "marginal", "fail"]
PASS_SCORE, MARGINAL_SCORE = 75.0, 50.0


@dataclass(frozen=True)
class MetricComparison:
    name: str
    group: str
    classification: Classification
    failed: bool  # classification in the failing direction (or no data)
    critical: bool
    direction: Direction
    p_value: float | None
    shift: float | None  # Hodges-Lehmann: candidate - baseline
    shift_low: float | None  # confidence interval of the shift
    shift_high: float | None
    n_baseline: int
    n_candidate: int
    baseline_median: float | None
    candidate_median: float | None


@dataclass(frozen=True)
class Score:
    groups: dict[str, float]
    score: float
    verdict: Verdict
    reason: str


def _clean(values: Sample) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    finite: npt.NDArray[np.float64] = arr[np.isfinite(arr)]
    return finite


def hodges_lehmann(baseline: Sample, candidate: Sample) -> float:
    """Median of all pairwise differences candidate_j - baseline_i."""
    x, y = _clean(baseline), _clean(candidate)
    if not len(x) or not len(y):
        raise ValueError("both samples need at least one value")
    return float(np.median(np.subtract.outer(y, x)))


def shift_interval(baseline: Sample, candidate: Sample, confidence: float) -> tuple[float, float]:
    """Distribution-free confidence interval of the shift from the ordered pairwise differences
    (normal approximation of the Mann-Whitney statistic's critical value)."""
    x, y = _clean(baseline), _clean(candidate)
    n, m = len(x), len(y)
    diffs = np.sort(np.subtract.outer(y, x).ravel())
    from scipy import stats as sps  # scipy costs ~1 s of import: only when comparing

    z = sps.norm.ppf(1 - (1 - confidence) / 2)
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    k = min(max(k, 0), len(diffs) - 1)
    return float(diffs[k]), float(diffs[len(diffs) - 1 - k])


def can_reject(n_baseline: int, n_candidate: int, confidence: float) -> bool:
    """Whether a two-sided Mann-Whitney test of these sample sizes can reach significance at all: its
    smallest attainable p-value (complete separation, no ties) is 2 / C(n + m, n)."""
    if n_baseline < 1 or n_candidate < 1:
        return False
    return 2.0 / math.comb(n_baseline + n_candidate, n_baseline) < 1.0 - confidence


def compare_metric(
    name: str,
    baseline: Sample,
    candidate: Sample,
    *,
    group: str = "default",
    direction: Direction = "either",
    critical: bool = False,
    confidence: float = 0.98,
    tolerance_abs: float = 0.0,
    tolerance_rel: float = 0.0,
    min_samples: int = 3,
) -> MetricComparison:
    """Classify the candidate sample against the baseline sample."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    x, y = _clean(baseline), _clean(candidate)
    med_x = float(np.median(x)) if len(x) else None
    med_y = float(np.median(y)) if len(y) else None
    if len(x) < min_samples or len(y) < min_samples or not can_reject(len(x), len(y), confidence):
        return MetricComparison(
            name,
            group,
            "nodata",
            True,
            critical,
            direction,
            None,
            None,
            None,
            None,
            len(x),
            len(y),
            med_x,
            med_y,
        )
    shift = hodges_lehmann(x, y)
    lo, hi = shift_interval(x, y, confidence)
    if np.all(x == x[0]) and np.all(y == x[0]):
        p_value = 1.0  # identical constant samples: scipy would divide by a zero variance
    else:
        from scipy import stats as sps

        p_value = float(sps.mannwhitneyu(y, x, alternative="two-sided").pvalue)
    tolerance = max(tolerance_abs, tolerance_rel * abs(med_x or 0.0))
    significant = p_value < 1.0 - confidence
    cls: Classification = "pass"
    if significant and shift > tolerance:
        cls = "high"
    elif significant and shift < -tolerance:
        cls = "low"
    failed = (cls == "high" and direction in ("increase", "either")) or (
        cls == "low" and direction in ("decrease", "either")
    )
    return MetricComparison(
        name, group, cls, failed, critical, direction, p_value, shift, lo, hi, len(x), len(y), med_x, med_y
    )


def score(comparisons: Sequence[MetricComparison], group_weights: Mapping[str, float] | None = None) -> Score:
    """Group scores, their weighted mean and the verdict (with the Kayenta overrides)."""
    if not comparisons:
        return Score({}, 0.0, "fail", "no metrics to compare")
    groups: dict[str, list[MetricComparison]] = {}
    for c in comparisons:
        groups.setdefault(c.group, []).append(c)
    group_scores = {g: 100.0 * sum(not c.failed for c in cs) / len(cs) for g, cs in groups.items()}
    weights = {g: float((group_weights or {}).get(g, 1.0)) for g in groups}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("group weights must be non-negative and not all zero")
    summary = sum(group_scores[g] * weights[g] for g in groups) / sum(weights.values())
    reason = f"{sum(not c.failed for c in comparisons)} of {len(comparisons)} metrics pass"
    nodata = sum(c.classification == "nodata" for c in comparisons)
    critical_failed = [c.name for c in comparisons if c.critical and c.failed]
    if critical_failed:
        summary, reason = 0.0, f"critical metric(s) failed: {', '.join(critical_failed)}"
    elif nodata * 2 >= len(comparisons):
        summary, reason = 0.0, f"no data for {nodata} of {len(comparisons)} metrics"
    verdict: Verdict = (
        "pass" if summary >= PASS_SCORE else "marginal" if summary >= MARGINAL_SCORE else "fail"
    )
    return Score(group_scores, summary, verdict, reason)
