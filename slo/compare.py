"""Statistical comparisons built on slo/stats.py: baseline vs fault within one run, and run A vs run B.

The samples of a metric are the SLO's SLI over consecutive slices (default 10 s) of a window; slices
without events are dropped. Each SLO is one metric (group = its journey, failing direction = decrease,
critical as declared in the SLO file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from slo.maths import FloatArray, window_count
from slo.sources import EventSeries, Source, Window
from slo.spec import SLO
from slo.stats import MetricComparison, Score, compare_metric, score

DEFAULT_SLICE_S = 10.0


def slice_slis(ev: EventSeries, window: Window, slice_s: float) -> FloatArray:
    """SLI of each whole slice of `slice_s` seconds in the window (slices without events dropped)."""
    if slice_s <= 0:
        raise ValueError("slice length must be positive")
    edges = np.arange(window.start, window.end - slice_s + 1e-9, slice_s)
    out = []
    for a in edges:
        total = window_count(ev.grid, ev.total, a, a + slice_s)
        if total > 0:
            out.append(window_count(ev.grid, ev.good, a, a + slice_s) / total)
    return np.asarray(out, dtype=float)


@dataclass
class ComparisonReport:
    baseline: str
    candidate: str
    slice_s: float
    metrics: list[MetricComparison]
    result: Score

    @property
    def exit_code(self) -> int:
        return 0 if self.result.verdict == "pass" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "slice_s": self.slice_s,
            "score": self.result.score,
            "verdict": self.result.verdict,
            "reason": self.result.reason,
            "groups": self.result.groups,
            "metrics": [asdict(m) for m in self.metrics],
        }


def compare(
    slos: Sequence[SLO],
    baseline: tuple[Source, Window],
    candidate: tuple[Source, Window],
    slice_s: float = DEFAULT_SLICE_S,
    confidence: float = 0.98,
    tolerance_abs: float = 0.005,
) -> ComparisonReport:
    """Compare every gated SLO's sliced SLI between two windows (of one source or of two). An SLO the gate
    leaves out (`testbed/gate: "false"`, e.g. order e-mails, which many windows have no events of) is left
    out here too, so the score judges what the gate judges."""
    (src_a, win_a), (src_b, win_b) = baseline, candidate
    metrics = []
    for slo in (s for s in slos if s.gated):
        a = slice_slis(src_a.events(slo), win_a, slice_s)
        b = slice_slis(src_b.events(slo), win_b, slice_s)
        metrics.append(
            compare_metric(
                slo.name,
                a,
                b,
                group=slo.journey or "shop",
                direction="decrease",
                critical=slo.critical,
                confidence=confidence,
                tolerance_abs=tolerance_abs,
            )
        )
    return ComparisonReport(
        f"{src_a.description} [{win_a.name}]",
        f"{src_b.description} [{win_b.name}]",
        slice_s,
        metrics,
        score(metrics),
    )
