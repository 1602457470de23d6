"""Kayenta-like statistics on known samples (pure)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from slo.stats import can_reject, compare_metric, hodges_lehmann, score, shift_interval


def test_hodges_lehmann_by_hand() -> None:
    # pairwise differences of [1, 2, 3] - [0, 1]: 1, 0, 2, 1, 3, 2 -> median 1.5
    assert hodges_lehmann([0, 1], [1, 2, 3]) == 1.5


def test_shift_interval_contains_the_true_shift() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 200)
    y = rng.normal(0.5, 1, 200)
    lo, hi = shift_interval(x, y, 0.98)
    assert lo < 0.5 < hi
    assert lo < hodges_lehmann(x, y) < hi


def test_clear_drop_is_low_and_fails_for_an_sli() -> None:
    baseline = [0.999, 1.0, 1.0, 0.998, 1.0, 0.999, 1.0, 1.0, 0.997, 1.0, 1.0, 0.999]
    fault = [0.5, 0.52, 0.48, 0.55, 0.47, 0.5, 0.51, 0.49, 0.53, 0.5, 0.46, 0.52]
    c = compare_metric("checkout", baseline, fault, direction="decrease")
    assert c.classification == "low"
    assert c.failed
    assert c.p_value is not None and c.p_value < 0.02
    assert c.p_value == pytest.approx(sps.mannwhitneyu(fault, baseline, alternative="two-sided").pvalue)
    assert c.shift is not None and c.shift < -0.4


def test_improvement_is_not_a_failure_when_only_decrease_fails() -> None:
    c = compare_metric("x", [0.5] * 6 + [0.51] * 6, [0.99] * 6 + [1.0] * 6, direction="decrease")
    assert c.classification == "high" and not c.failed


def test_same_distribution_passes() -> None:
    rng = np.random.default_rng(3)
    c = compare_metric("x", rng.normal(1, 0.1, 50), rng.normal(1, 0.1, 50))
    assert c.classification == "pass" and not c.failed


def test_constant_identical_samples_pass() -> None:
    c = compare_metric("x", [1.0] * 10, [1.0] * 10, direction="decrease")
    assert c.classification == "pass" and c.p_value == 1.0


def test_tolerance_absorbs_small_significant_shift() -> None:
    base = [1.0] * 20 + [0.999] * 5
    cand = [0.998] * 25
    assert compare_metric("x", base, cand, direction="decrease").classification == "low"
    tolerant = compare_metric("x", base, cand, direction="decrease", tolerance_abs=0.01)
    assert tolerant.classification == "pass"


def test_too_few_samples_is_nodata() -> None:
    c = compare_metric("x", [1.0, 1.0], [1.0, 0.9, 0.8], min_samples=3)
    assert c.classification == "nodata" and c.failed
    nan_only = compare_metric("x", [np.nan] * 5, [1.0] * 5)
    assert nan_only.classification == "nodata"


def test_samples_too_small_to_ever_reject_are_nodata_not_a_pass() -> None:
    """3 slices against 5, perfectly separated (the fault took every checkout): the exact two-sided test's
    best p-value is 2 / C(8, 3) = 0.036, so at 98 % confidence it could only ever say "pass". Such a
    comparison is no data (and fails), never a silent pass; one slice more on each side can decide."""
    assert not can_reject(3, 5, 0.98) and not can_reject(4, 4, 0.98) and not can_reject(0, 9, 0.98)
    assert can_reject(4, 5, 0.98) and can_reject(3, 7, 0.98) and can_reject(3, 5, 0.95)
    too_few = compare_metric("x", [1.0] * 3, [0.0] * 5, direction="decrease")
    assert too_few.classification == "nodata" and too_few.failed
    decided = compare_metric("x", [1.0] * 4, [0.0] * 5, direction="decrease")
    assert decided.classification == "low" and decided.failed
    for n, m in [(3, 5), (4, 4), (4, 5), (3, 7), (5, 5)]:  # the bound is the exact test's own minimum
        exact = sps.mannwhitneyu(np.arange(n) + 100, np.arange(m), alternative="two-sided", method="exact")
        assert can_reject(n, m, 0.98) == (exact.pvalue < 0.02), (n, m, exact.pvalue)


def _metric(name: str, group: str, cls: str, critical: bool = False):
    base = [1.0] * 10
    cand = {"pass": [1.0] * 10, "low": [0.5] * 10, "nodata": [1.0]}[cls]
    return compare_metric(name, base, cand, group=group, direction="decrease", critical=critical)


def test_score_groups_weights_and_verdicts() -> None:
    metrics = [_metric("a", "g1", "pass"), _metric("b", "g1", "low"), _metric("c", "g2", "pass")]
    s = score(metrics)
    assert s.groups == {"g1": 50.0, "g2": 100.0}
    assert s.score == pytest.approx(75.0) and s.verdict == "pass"
    weighted = score(metrics, {"g1": 3, "g2": 1})
    assert weighted.score == pytest.approx(62.5) and weighted.verdict == "marginal"
    assert (
        score([_metric("a", "g", "low"), _metric("b", "g", "low"), _metric("c", "g", "pass")]).verdict
        == "fail"
    )


def test_failed_critical_metric_scores_zero() -> None:
    metrics = [_metric(str(i), "g", "pass") for i in range(9)] + [_metric("crit", "g", "low", critical=True)]
    s = score(metrics)
    assert s.score == 0.0 and s.verdict == "fail" and "crit" in s.reason


def test_half_no_data_scores_zero() -> None:
    s = score([_metric("a", "g", "pass"), _metric("b", "g", "nodata")])
    assert s.score == 0.0 and "no data" in s.reason


def test_no_metrics_fails() -> None:
    assert score([]).verdict == "fail"
