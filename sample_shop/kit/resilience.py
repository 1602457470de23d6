"""The pure parts of the outbound client: circuit breaker state machine, backoff schedule and replica
balancer. No sockets, no sleeping: clocks and random sources are passed in, so every transition is
testable without a server.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class BreakerState(IntEnum):
    """Values are what the BREAKER_STATE gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerSettings:
    window_s: float = 10.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 5.0
    half_open_calls: int = 2


class CircuitBreaker:
    """Closed -> open when, over the last `window_s` seconds, at least `min_calls` calls completed and the
    share of failures reached `failure_ratio`. Open -> half-open after `open_s`; half-open admits up to
    `half_open_calls` probes at a time: one success closes the breaker, one failure opens it again."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._events: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self.on_change: Callable[[BreakerState], None] | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.settings.open_s:
            self._set(BreakerState.HALF_OPEN)
            self._probes = 0
        return self._state

    def configure(self, settings: BreakerSettings) -> None:
        self.settings = settings

    def allow(self) -> bool:
        """Ask before each attempt; a True answer must be followed by exactly one `record`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.settings.half_open_calls:
            self._probes += 1
            return True
        return False

    def record(self, success: bool) -> None:
        now = self._clock()
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if success:
                self._reset_window()
                self._set(BreakerState.CLOSED)
            else:
                self._trip(now)
            return
        if state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; it no longer counts
        self._events.append((now, not success))
        if not success:
            self._failures += 1
        self._prune(now)
        total = len(self._events)
        if total >= self.settings.min_calls and self._failures / total >= self.settings.failure_ratio:
            self._trip(now)

    def reset(self) -> None:
        """Back to closed with an empty window (admin `DELETE /breakers`)."""
        self._reset_window()
        self._probes = 0
        self._set(BreakerState.CLOSED)

    def snapshot(self) -> dict[str, float | int | str]:
        self._prune(self._clock())
        return {"state": self.state.name.lower(), "calls": len(self._events), "failures": self._failures}

    def _prune(self, now: float) -> None:
        horizon = now - self.settings.window_s
        events = self._events
        while events and events[0][0] < horizon:
            _, failed = events.popleft()
            if failed:
                self._failures -= 1

    def _trip(self, now: float) -> None:
        self._opened_at = now
        self._reset_window()
        self._set(BreakerState.OPEN)

    def _reset_window(self) -> None:
        self._events.clear()
        self._failures = 0

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)


def backoff_delay_s(retry: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number `retry` (1-based):
    uniform(0, min(max_s, base_s * 2**(retry-1))). base_s == 0 means retry at once (the naive profile)."""
    if retry < 1:
        raise ValueError(f"retry must be >= 1, got {retry}")
    if base_s <= 0 or max_s <= 0:
        return 0.0
    ceiling = min(max_s, base_s * (2 ** min(retry - 1, 30)))
    return rng.uniform(0.0, ceiling)


class RoundRobinBalancer:
    """Round robin over a dependency's replicas, skipping replicas ejected for refusing connections. When
    every replica is ejected it still answers (round robin over all): better a try than a certain fail."""

    def __init__(self, urls: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("a balancer needs at least one replica URL")
        self.urls = tuple(urls)
        self._clock = clock
        self._next = 0
        self._ejected_until: dict[str, float] = {}

    def pick(self, avoid: str | None = None) -> str:
        """The next healthy replica; `avoid` (the one that just failed) is skipped when another is healthy."""
        now = self._clock()
        count = len(self.urls)
        fallback: str | None = None
        for _ in range(count):
            url = self.urls[self._next % count]
            self._next += 1
            if self._ejected_until.get(url, 0.0) > now:
                continue
            if url == avoid and count > 1:
                fallback = fallback or url
                continue
            return url
        if fallback is not None:
            return fallback
        url = self.urls[self._next % count]
        self._next += 1
        return url

    def eject(self, url: str, seconds: float) -> None:
        if seconds > 0:
            self._ejected_until[url] = self._clock() + seconds

    def reset(self) -> None:
        self._ejected_until.clear()

    def healthy(self) -> list[str]:
        now = self._clock()
        return [u for u in self.urls if self._ejected_until.get(u, 0.0) <= now]
