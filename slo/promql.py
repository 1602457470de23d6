"""PromQL builders: the only place SLO queries are spelled out (rules, the live evaluator, reports)."""

from __future__ import annotations

from sample_shop.basics import prom_duration
from slo.selector import Selector
from slo.spec import SLO

RULE_PREFIX = "slo"
ALERT_NAME = "SLOErrorBudgetBurn"


def number(x: float) -> str:
    """A float as PromQL writes it, without binary noise (0.14400000000000002 -> 0.144)."""
    return format(round(x, 12), "g") if abs(x) >= 1e-4 else repr(x)


def sum_rate(sel: Selector, window_s: int) -> str:
    return f"sum(rate({sel.promql()}[{prom_duration(window_s)}]))"


def sum_increase_at(sel: Selector, window_s: int, at_unix_s: float) -> str:
    """Events of the window (at - window, at] as Prometheus counts them, pinned with the @ modifier.
    Reports show it so every number can be reproduced in the Prometheus UI."""
    return f"sum(increase({sel.promql()}[{prom_duration(window_s)}] @ {at_unix_s:.3f}))"


def quantile_at(quantile: float, buckets: Selector, window_s: int, at_unix_s: float) -> str:
    """The `quantile` (0..1) of a histogram's `_bucket` series over the window (at - window, at]."""
    increase = f"increase({buckets.promql()}[{prom_duration(window_s)}] @ {at_unix_s:.3f})"
    return f"histogram_quantile({number(quantile)}, sum by (le) ({increase}))"


def error_ratio(slo: SLO, window_s: int) -> str:
    """Share of bad events over the window. A missing good (or bad) series means zero such events, hence
    `or vector(0)`: without it a total outage (no good series yet) would yield no value and no alert.
    Zero traffic gives NaN (0/0), which compares false: no data never looks like a breach or a pass."""
    total = sum_rate(slo.total, window_s)
    if slo.bad is not None:
        return f"({sum_rate(slo.bad, window_s)} or vector(0)) / {total}"
    assert slo.good is not None
    return f"1 - (({sum_rate(slo.good, window_s)} or vector(0)) / {total})"


def sli_error_record(window_s: int) -> str:
    """Recording-rule name of the error ratio over a window, Sloth-style: slo:sli_error:ratio_rate5m."""
    return f"{RULE_PREFIX}:sli_error:ratio_rate{prom_duration(window_s)}"


# The host, from node_exporter (job `node`): the testbed's own measuring instrument, not an SLO. One place so
# that the report, the live view and the verdicts' noise guard read the same numbers.
HOST_CPU_WINDOW = "10s"


def host_cpu_busy(window: str = HOST_CPU_WINDOW, job: str = "node") -> str:
    """Share of the host's CPU time not idle (0..1), averaged over every core."""
    return f'1 - avg(rate(node_cpu_seconds_total{{job="{job}",mode="idle"}}[{window}]))'


def host_cpu_waiting(window: str = HOST_CPU_WINDOW, job: str = "node") -> str:
    """Share of wall time some runnable task waited for a CPU (Linux PSI `some`, 0..1): saturation proper,
    which a busy share near 1 only suggests."""
    return f'rate(node_pressure_cpu_waiting_seconds_total{{job="{job}"}}[{window}])'
