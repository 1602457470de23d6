"""Baseline versus fault within a run, and one run versus another, pure: request records in, a table of
tests and effect sizes out.

Per SLO journey, three metrics: the latency of each request (every request is a sample), and the error
ratio and throughput of consecutive slices of the window (each slice is a sample, as Kayenta compares
metric time series). Each metric gets slo.stats' two-sided Mann-Whitney U test and Hodges-Lehmann shift
(with its confidence interval and a pass/high/low classification), plus two effect sizes that do not
depend on the sample size: Cliff's delta (P(candidate > baseline) - P(candidate < baseline), from -1 to 1)
and the ratio of medians. `slo_comparison` runs slo.compare (the SLO-level Kayenta score of
`testbed slo compare`) on the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy import stats as sps

from slo.compare import ComparisonReport, compare
from slo.sources import DEFAULT_JUDGED_PHASES, Source, Window
from slo.spec import SLO
from slo.stats import Direction, compare_metric
from testbed.runfolder import Phase

# Hodges-Lehmann takes every pairwise difference (n x m values): beyond this many requests per side a
# seeded random subsample keeps memory and time small; the test's power is plenty at this size.
MAX_LATENCY_SAMPLES = 2000
CONFIDENCE = 0.98
# (metric, failing direction, absolute tolerance, tolerance relative to the baseline median)
METRICS: tuple[tuple[str, Direction, float, float], ...] = (
    ("latency_ms", "increase", 0.0, 0.10),
    ("error_ratio", "increase", 0.005, 0.0),
    ("throughput_rps", "decrease", 0.0, 0.10),
)


def default_slice_s(*windows: Phase) -> float:
    """About ten slices in the shortest window, between 1 s and 10 s (the scrape interval to the SLO
    comparison's default)."""
    shortest = min(w.seconds for w in windows)
    return float(min(10.0, max(1.0, round(shortest / 10))))


def comparison_window(phases: Sequence[Phase]) -> Phase | None:
    """What to compare between two runs: the fault phase, else the judged phases together (as
    `testbed slo compare RUN_A RUN_B` does), else None."""
    fault = next((p for p in phases if p.name == "fault"), None)
    if fault is not None:
        return fault
    judged = [p for p in phases if p.name in DEFAULT_JUDGED_PHASES]
    return Phase("judged", judged[0].start, judged[-1].end) if judged else None


def in_window(requests: pd.DataFrame, window: Phase) -> pd.DataFrame:
    times = requests["t"].to_numpy(dtype=float)
    return requests[(times >= window.start) & (times < window.end)]


def slice_metrics(requests: pd.DataFrame, window: Phase, slice_s: float) -> pd.DataFrame:
    """Per whole slice of the window: requests, throughput and error ratio (NaN without requests)."""
    if slice_s <= 0:
        raise ValueError("slice length must be positive")
    count = int((window.seconds + 1e-9) // slice_s)
    inside = in_window(requests, window)
    index = np.floor((inside["t"].to_numpy(dtype=float) - window.start) / slice_s).astype(int)
    keep = index < count  # a partial last slice would be a biased sample
    failed = ~inside["ok"].to_numpy(dtype=bool)
    totals = np.bincount(index[keep], minlength=count).astype(float)
    failures = np.bincount(index[keep], weights=failed[keep].astype(float), minlength=count)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(totals > 0, failures / totals, np.nan)
    return pd.DataFrame({"requests": totals, "throughput_rps": totals / slice_s, "error_ratio": ratio})


def cliffs_delta(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """P(candidate > baseline) - P(candidate < baseline), from the Mann-Whitney U statistic."""
    x = np.asarray(baseline, dtype=float)
    y = np.asarray(candidate, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        raise ValueError("both samples need at least one value")
    # U of the candidate = pairs with y > x, ties counting half (rank sum form: no p-value computed)
    u = sps.rankdata(np.concatenate([y, x]))[: len(y)].sum() - len(y) * (len(y) + 1) / 2
    return float(2.0 * u / (len(x) * len(y)) - 1.0)


def _capped(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (
        values
        if len(values) <= MAX_LATENCY_SAMPLES
        else rng.choice(values, MAX_LATENCY_SAMPLES, replace=False)
    )


def samples(requests: pd.DataFrame, window: Phase, slice_s: float) -> dict[str, np.ndarray]:
    """The three metrics' samples of one set of requests in one window."""
    slices = slice_metrics(requests, window, slice_s)
    return {
        "latency_ms": in_window(requests, window)["response_time_ms"].to_numpy(dtype=float),
        "error_ratio": slices["error_ratio"].dropna().to_numpy(dtype=float),
        "throughput_rps": slices["throughput_rps"].to_numpy(dtype=float),
    }


def compare_requests(
    baseline: pd.DataFrame,
    baseline_window: Phase,
    candidate: pd.DataFrame,
    candidate_window: Phase,
    slice_s: float | None = None,
    journeys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (journey, metric): sample sizes, medians and their ratio, Hodges-Lehmann shift and
    interval, Mann-Whitney p-value, Cliff's delta, classification and whether it fails. Journeys from
    `slo_journey` (requests shaped by overview.with_phases); `all` is every request together."""
    slice_s = slice_s or default_slice_s(baseline_window, candidate_window)
    rng = np.random.default_rng(0)  # the same subsample every time the notebook runs
    names = list(journeys or sorted(set(baseline["slo_journey"]) | set(candidate["slo_journey"])))
    rows = []
    for journey in ["all", *names]:
        a = baseline if journey == "all" else baseline[baseline["slo_journey"] == journey]
        b = candidate if journey == "all" else candidate[candidate["slo_journey"] == journey]
        sa, sb = samples(a, baseline_window, slice_s), samples(b, candidate_window, slice_s)
        for metric, direction, tol_abs, tol_rel in METRICS:
            x, y = sa[metric], sb[metric]
            if metric == "latency_ms":
                x, y = _capped(x, rng), _capped(y, rng)
            result = compare_metric(
                metric,
                x,
                y,
                group=journey,
                direction=direction,
                confidence=CONFIDENCE,
                tolerance_abs=tol_abs,
                tolerance_rel=tol_rel,
            )
            medians = (result.baseline_median, result.candidate_median)
            rows.append(
                {
                    "journey": journey,
                    "metric": metric,
                    "n_baseline": result.n_baseline,
                    "n_candidate": result.n_candidate,
                    "baseline_median": medians[0],
                    "candidate_median": medians[1],
                    "ratio_of_medians": medians[1] / medians[0]
                    if None not in medians and medians[0]
                    else None,
                    "hl_shift": result.shift,
                    "hl_low": result.shift_low,
                    "hl_high": result.shift_high,
                    "p_value": result.p_value,
                    "cliffs_delta": cliffs_delta(x, y) if len(x) and len(y) else None,
                    "classification": result.classification,
                    "failed": result.failed,
                }
            )
    return pd.DataFrame(rows).set_index(["journey", "metric"])


def slo_comparison(
    slos: Sequence[SLO],
    baseline: tuple[Source, Phase],
    candidate: tuple[Source, Phase],
    slice_s: float | None = None,
) -> tuple[pd.DataFrame, ComparisonReport]:
    """slo.compare over two windows (of one run folder or of two): per SLO the sliced SLIs' test and
    classification, and the Kayenta-like score and verdict."""
    (src_a, win_a), (src_b, win_b) = baseline, candidate
    slice_s = slice_s or default_slice_s(win_a, win_b)
    report = compare(
        slos,
        (src_a, Window(win_a.name, win_a.start, win_a.end)),
        (src_b, Window(win_b.name, win_b.start, win_b.end)),
        slice_s=slice_s,
        confidence=CONFIDENCE,
    )
    table = pd.DataFrame([asdict(m) for m in report.metrics]).set_index("name")
    keep = ["group", "critical", "n_baseline", "n_candidate", "baseline_median", "candidate_median", "shift",
            "p_value", "classification", "failed"]  # fmt: skip
    return table[keep], report
