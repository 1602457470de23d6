"""The noise guard, pure: was the measuring instrument saturated while a window was judged?

A latency verdict rests on two clocks that are not the shop's: the host's CPUs and the load generator's
own process. When the host is saturated, every request waits for a CPU, so latency grows whatever the
shop's code does; when the load generator is CPU-bound, it measures its own queue (Locust warns above
90 % of a core for that reason). A latency SLI from such a window says nothing reliable about the shop:
neither a pass nor a breach may be reported silently. Availability SLIs count outcomes, not time, and
are not affected.

Inputs are the samples of a window (one per scrape, as collected into the run folder or read live):
- host busy share (node_exporter, 1 - idle, averaged over cores) and host CPU waiting share (Linux PSI
  `some`: share of wall time at least one runnable task waited for a CPU);
- the load generator's CPU as a share of one core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Saturated = these figures averaged over the judged window (a short spike is not saturation, a window
# spent at the ceiling is). The load generator's threshold is Locust's own warning line.
HOST_BUSY_SATURATED = 0.95  # both cores busy 95 % of the window
HOST_WAITING_SATURATED = 0.50  # some runnable task waited for a CPU during half the window
LOAD_CPU_SATURATED = 0.90  # of one core


@dataclass(frozen=True)
class NoiseCheck:
    """What the guard found for one window. `saturated` lists the instruments at their limit, with the
    figure, for the report and the gate's message; `measured` is False when nothing was measured."""

    window: str
    host_busy_mean: float | None = None
    host_waiting_mean: float | None = None
    load_cpu_mean: float | None = None
    saturated: tuple[str, ...] = field(default_factory=tuple)

    @property
    def measured(self) -> bool:
        return any(v is not None for v in (self.host_busy_mean, self.host_waiting_mean, self.load_cpu_mean))

    @property
    def reliable(self) -> bool:
        return not self.saturated

    def reason(self) -> str:
        """One sentence for a report: why this window's latency verdicts are unreliable."""
        if self.reliable:
            return ""
        return (
            f"{' and '.join(self.saturated)} in the {self.window} window: latency there measures the "
            "machine, not the shop (rerun on a quieter machine, or with fewer users)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "window": self.window,
            "host_busy_mean": self.host_busy_mean,
            "host_waiting_mean": self.host_waiting_mean,
            "load_cpu_mean": self.load_cpu_mean,
            "saturated": list(self.saturated),
            "reliable": self.reliable,
        }


def _mean(samples: Sequence[float] | np.ndarray | None) -> float | None:
    if samples is None:
        return None
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def check_window(
    window: str,
    host_busy: Sequence[float] | np.ndarray | None,
    host_waiting: Sequence[float] | np.ndarray | None,
    load_cpu: Sequence[float] | np.ndarray | None,
) -> NoiseCheck:
    """Judge one window's instrument samples against the saturation thresholds above."""
    busy, waiting, load = _mean(host_busy), _mean(host_waiting), _mean(load_cpu)
    saturated = []
    if busy is not None and busy >= HOST_BUSY_SATURATED:
        saturated.append(f"host CPU {busy:.0%} busy")
    if waiting is not None and waiting >= HOST_WAITING_SATURATED:
        saturated.append(f"tasks waited for a CPU {waiting:.0%} of the time")
    if load is not None and load >= LOAD_CPU_SATURATED:
        saturated.append(f"load generator at {load:.0%} of a core")
    return NoiseCheck(window, busy, waiting, load, tuple(saturated))
