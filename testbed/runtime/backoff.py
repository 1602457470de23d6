"""Restart policy for crashed replicas, like Kubernetes' CrashLoopBackOff but scaled to a laptop: the first
restart is fast, each further crash doubles the delay up to a cap, and a replica that stayed up for a
stable period starts over with the fast delay. Pure: no clocks, the caller passes times in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 10.0
    stable_after_s: float = 10.0  # a run at least this long resets the backoff

    def delay(self, consecutive_crashes: int) -> float:
        """Delay before the restart that follows the n-th crash in a row (n >= 1)."""
        if consecutive_crashes < 1:
            raise ValueError(f"consecutive_crashes must be >= 1, got {consecutive_crashes}")
        return min(self.max_delay_s, self.initial_delay_s * self.factor ** (consecutive_crashes - 1))

    def crashes_after(self, previous_crashes: int, ran_for_s: float) -> int:
        """Consecutive crash count after a crash, given how long the process had been running."""
        return 1 if ran_for_s >= self.stable_after_s else previous_crashes + 1
