"""The in-process fault registry of one replica and the machinery that makes faults happen.

- `FaultRegistry`: the active faults; expiry by TTL (the clock is injectable); hot-path views per target
  (inbound, outbound per peer, database) that are plain tuples, so a replica without faults pays one
  truthiness check per request. Decisions ignore expired faults at once, and `expire_due()` (run by a
  0.2 s ticker in the service) ends their side effects, so a fault is gone within 1 s of its expiry.
- Pure decision functions (`decide_inbound`, `decide_outbound`, `decide_database`, `sample_latency_s`).
- `FaultEffects`: what starting and ending a fault does besides the hot-path checks: the CPU hog threads,
  the memory leak, the SHOP_FAULTS_ACTIVE gauge and a log line at start and end.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sample_shop.kit.faultspec import (
    KINDS,
    REPLICA_KINDS,
    Fault,
    FaultSpec,
    new_fault_id,
)

log = logging.getLogger("sample_shop.faults")


class FaultListener(Protocol):
    def fault_started(self, fault: Fault) -> None: ...

    def fault_ended(self, fault: Fault, reason: str) -> None: ...


# --------------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------------


def sample_latency_s(params: dict[str, Any], rng: random.Random) -> float:
    """Added delay in seconds for a latency fault's params (ms, distribution, jitter_ms, alpha)."""
    ms = float(params["ms"])
    jitter = float(params.get("jitter_ms", 0))
    distribution = params.get("distribution", "fixed")
    if distribution == "normal":
        value = rng.gauss(ms, jitter)
    elif distribution == "pareto":
        value = ms * rng.paretovariate(float(params.get("alpha", 2.0)))
    else:
        value = ms + (rng.uniform(-jitter, jitter) if jitter else 0.0)
    return min(max(value, 0.0), 60_000.0) / 1000.0


def _hits(fault: Fault, rng: random.Random) -> bool:
    probability = fault.params.get("probability", 1.0)
    return bool(probability >= 1.0 or rng.random() < probability)


@dataclass(frozen=True)
class InboundDecision:
    delay_s: float = 0.0
    status: int | None = None  # answer this status instead of serving
    hang: Fault | None = None  # do not answer until this fault ends
    fault_ids: tuple[str, ...] = ()


def decide_inbound(
    faults: Iterable[Fault], route: str, now: float, rng: random.Random
) -> InboundDecision | None:
    delay, status, hang, ids = 0.0, None, None, []
    for fault in faults:
        if fault.expires_at <= now:
            continue
        wanted = fault.params.get("route")
        if wanted is not None and wanted != route:
            continue
        if not _hits(fault, rng):
            continue
        ids.append(fault.id)
        if fault.kind == "latency":
            delay += sample_latency_s(fault.params, rng)
        elif fault.kind == "error" and status is None:
            status = int(fault.params["status"])
        elif fault.kind == "hang" and hang is None:
            hang = fault
    if not ids:
        return None
    return InboundDecision(delay, status, hang, tuple(ids))


@dataclass(frozen=True)
class OutboundDecision:
    delay_s: float = 0.0
    status: int | None = None  # answer without sending
    refuse: bool = False  # fail as connection refused
    reset: bool = False  # fail as connection reset
    fault_ids: tuple[str, ...] = ()


def decide_outbound(faults: Iterable[Fault], now: float, rng: random.Random) -> OutboundDecision | None:
    delay, status, refuse, reset, ids = 0.0, None, False, False, []
    for fault in faults:
        if fault.expires_at <= now or not _hits(fault, rng):
            continue
        ids.append(fault.id)
        if fault.kind == "outbound-latency":
            delay += sample_latency_s(fault.params, rng)
        elif fault.kind == "outbound-error" and status is None:
            status = int(fault.params["status"])
        elif fault.kind == "outbound-refused":
            refuse = True
        elif fault.kind == "outbound-reset":
            reset = True
    if not ids:
        return None
    return OutboundDecision(delay, status, refuse, reset, tuple(ids))


@dataclass(frozen=True)
class DatabaseDecision:
    delay_s: float = 0.0
    unavailable: bool = False


def decide_database(faults: Iterable[Fault], now: float, rng: random.Random) -> DatabaseDecision | None:
    delay, unavailable, hit = 0.0, False, False
    for fault in faults:
        if fault.expires_at <= now or not _hits(fault, rng):
            continue
        hit = True
        if fault.kind == "db-slow":
            delay += float(fault.params["ms"]) / 1000.0
        elif fault.kind == "db-unavailable":
            unavailable = True
    return DatabaseDecision(delay, unavailable) if hit else None


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


class FaultRegistry:
    """Active faults of one replica. Mutations happen on the event loop (admin API, ticker); the hot-path
    views are immutable tuples replaced on each change, so worker threads may read them without a lock."""

    def __init__(
        self,
        service: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        listeners: Iterable[FaultListener] = (),
    ) -> None:
        self.service = service
        self.clock = clock
        self.rng = rng or random.Random()
        self.listeners = list(listeners)
        self._faults: dict[str, Fault] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._lock = threading.RLock()
        self.inbound: tuple[Fault, ...] = ()
        self.outbound: dict[str, tuple[Fault, ...]] = {}
        self.database: tuple[Fault, ...] = ()

    # ---- changes ----

    def add(self, spec: FaultSpec, *, fault_id: str | None = None, expires_at: float | None = None) -> Fault:
        if spec.kind not in REPLICA_KINDS:
            raise ValueError(f"{spec.kind!r} is not a replica fault")
        now = self.clock()
        fault = Fault(
            id=fault_id or new_fault_id(),
            spec=spec,
            created_at=now,
            expires_at=expires_at if expires_at is not None else now + spec.ttl_s,
        )
        with self._lock:
            previous = self._faults.pop(fault.id, None)
            if previous is not None:
                self._end(previous, "replaced")
            self._faults[fault.id] = fault
            self._rebuild()
        for listener in self.listeners:
            listener.fault_started(fault)
        return fault

    def replace(self, faults: Iterable[Fault]) -> None:
        """Make the active set exactly `faults` (what a controller pushes). A fault already running with the
        same id and spec keeps running (its expiry is updated) instead of being restarted."""
        wanted = {f.id: f for f in faults}
        started: list[Fault] = []
        with self._lock:
            for fault_id, current in list(self._faults.items()):
                new = wanted.get(fault_id)
                if new is None or new.spec != current.spec:
                    self._faults.pop(fault_id)
                    self._end(current, "replaced")
            for fault_id, new in wanted.items():
                existing = self._faults.get(fault_id)
                if existing is None:
                    started.append(new)
                    self._faults[fault_id] = new
                else:
                    self._faults[fault_id] = Fault(fault_id, current.spec, current.created_at, new.expires_at)
            self._rebuild()
        for fault in started:
            for listener in self.listeners:
                listener.fault_started(fault)

    def remove(self, fault_id: str) -> Fault | None:
        with self._lock:
            fault = self._faults.pop(fault_id, None)
            if fault is not None:
                self._end(fault, "removed")
                self._rebuild()
        return fault

    def clear(self) -> list[Fault]:
        with self._lock:
            ended = list(self._faults.values())
            self._faults.clear()
            for fault in ended:
                self._end(fault, "removed")
            self._rebuild()
        return ended

    def expire_due(self) -> list[Fault]:
        now = self.clock()
        with self._lock:
            due = [f for f in self._faults.values() if f.expires_at <= now]
            for fault in due:
                del self._faults[fault.id]
                self._end(fault, "expired")
            if due:
                self._rebuild()
        return due

    # ---- reads ----

    def active(self) -> list[Fault]:
        now = self.clock()
        return sorted((f for f in self._faults.values() if f.expires_at > now), key=lambda f: f.created_at)

    def get(self, fault_id: str) -> Fault | None:
        fault = self._faults.get(fault_id)
        return fault if fault is not None and fault.expires_at > self.clock() else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(REPLICA_KINDS, 0)
        for fault in self.active():
            counts[fault.kind] += 1
        return counts

    def inbound_decision(self, route: str) -> InboundDecision | None:
        faults = self.inbound
        return decide_inbound(faults, route, self.clock(), self.rng) if faults else None

    def outbound_decision(self, peer: str) -> OutboundDecision | None:
        faults = self.outbound.get(peer)
        return decide_outbound(faults, self.clock(), self.rng) if faults else None

    def database_decision(self) -> DatabaseDecision | None:
        faults = self.database
        return decide_database(faults, self.clock(), self.rng) if faults else None

    def ended_event(self, fault_id: str) -> asyncio.Event:
        """Set when the fault ends (removed, replaced or expired); used by `hang`."""
        with self._lock:
            event = self._ended.get(fault_id)
            if event is None:
                event = self._ended[fault_id] = asyncio.Event()
                if fault_id not in self._faults:
                    event.set()
            return event

    # ---- internals ----

    def _end(self, fault: Fault, reason: str) -> None:
        event = self._ended.pop(fault.id, None)
        if event is not None:
            event.set()
        for listener in self.listeners:
            try:
                listener.fault_ended(fault, reason)
            except Exception:  # a listener must never keep a fault alive
                log.exception("fault listener failed while ending %s", fault.id)

    def _rebuild(self) -> None:
        faults = list(self._faults.values())
        self.inbound = tuple(f for f in faults if KINDS[f.kind].target == "inbound")
        outbound: dict[str, list[Fault]] = {}
        for f in faults:
            if KINDS[f.kind].target == "outbound":
                outbound.setdefault(f.params["peer"], []).append(f)
        self.outbound = {peer: tuple(fs) for peer, fs in outbound.items()}
        self.database = tuple(f for f in faults if KINDS[f.kind].target == "database")


# --------------------------------------------------------------------------------------------------
# Side effects: CPU hog, memory leak, gauge, log lines
# --------------------------------------------------------------------------------------------------


class CpuHog:
    """Threads that spin for `duty` of every 100 ms. With the GIL they compete with request handling,
    which is what a CPU-starved service looks like from outside."""

    def __init__(self, threads: int, duty: float) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._spin, args=(duty,), name=f"fault-cpu-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _spin(self, duty: float) -> None:
        period = 0.1
        while not self._stop.is_set():
            until = time.perf_counter() + period * duty
            x = 0
            while time.perf_counter() < until:
                x += 1
            if duty < 1.0:
                self._stop.wait(period * (1.0 - duty))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)


class MemoryLeak:
    """Grows resident memory at `rate_mb_s` up to `cap_mb` with anonymous mmaps written page by page (so the
    kernel really backs them), released at once by closing the maps when the fault ends."""

    CHUNK = 1 << 20

    def __init__(self, rate_mb_s: float, cap_mb: int) -> None:
        self._maps: list[mmap.mmap] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._grow, args=(rate_mb_s, cap_mb), name="fault-memory", daemon=True
        )
        self._thread.start()

    @property
    def leaked_mb(self) -> int:
        return len(self._maps)

    def _grow(self, rate_mb_s: float, cap_mb: int) -> None:
        fill = b"\xa5" * self.CHUNK
        owed = 0.0
        tick = 0.1
        while not self._stop.wait(tick):
            owed += rate_mb_s * tick
            while owed >= 1.0 and len(self._maps) < cap_mb and not self._stop.is_set():
                chunk = mmap.mmap(-1, self.CHUNK)
                chunk.write(fill)
                with self._lock:
                    if self._stop.is_set():
                        chunk.close()
                        return
                    self._maps.append(chunk)
                owed -= 1.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        with self._lock:
            for chunk in self._maps:
                chunk.close()
            self._maps.clear()


class FaultEffects:
    """Listener starting and stopping the resource faults, keeping the gauge and logging each change."""

    def __init__(self, service: str, gauge_setter: Callable[[dict[str, int]], None] | None = None) -> None:
        self.service = service
        self._gauge_setter = gauge_setter
        self._running: dict[str, CpuHog | MemoryLeak] = {}
        self._counts: dict[str, int] = dict.fromkeys(REPLICA_KINDS, 0)
        if gauge_setter is not None:
            gauge_setter(self._counts)

    def fault_started(self, fault: Fault) -> None:
        if fault.kind == "cpu":
            self._running[fault.id] = CpuHog(int(fault.params["threads"]), float(fault.params["duty"]))
        elif fault.kind == "memory":
            self._running[fault.id] = MemoryLeak(
                float(fault.params["rate_mb_s"]), int(fault.params["cap_mb"])
            )
        self._count(fault.kind, +1)
        log.warning(
            "fault started",
            extra={
                "fields": {
                    "event": "fault_started",
                    "fault_id": fault.id,
                    "kind": fault.kind,
                    "params": fault.params,
                    "ttl_s": fault.spec.ttl_s,
                }
            },
        )

    def fault_ended(self, fault: Fault, reason: str) -> None:
        effect = self._running.pop(fault.id, None)
        if effect is not None:
            effect.stop()
        self._count(fault.kind, -1)
        log.warning(
            "fault ended",
            extra={
                "fields": {"event": "fault_ended", "fault_id": fault.id, "kind": fault.kind, "reason": reason}
            },
        )

    def _count(self, kind: str, delta: int) -> None:
        self._counts[kind] = max(0, self._counts[kind] + delta)
        if self._gauge_setter is not None:
            self._gauge_setter({kind: self._counts[kind]})

    def stop_all(self) -> None:
        for effect in self._running.values():
            effect.stop()
        self._running.clear()
