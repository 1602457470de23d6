"""The time bounds of a load run, shared by the runner (which enforces them) and the background control
(which knows from them when a run must have ended by itself). Pure constants and arithmetic."""

from __future__ import annotations

STOP_TIMEOUT_S = 5.0  # users finish the journey step they are in before stopping (no half checkouts)
GRACE_S = 15.0  # beyond duration + stop timeout before the run is stopped by force
ALARM_MARGIN_S = 60.0  # beyond that deadline SIGALRM ends the process, results or not


def deadline_s(duration_s: float) -> float:
    """Seconds after the start by which the runner stops the users whatever the shape says."""
    return duration_s + STOP_TIMEOUT_S + GRACE_S


def hard_limit_s(duration_s: float) -> float:
    """Seconds after the start by which the load process has ended, whatever happens inside it."""
    return deadline_s(duration_s) + ALARM_MARGIN_S
