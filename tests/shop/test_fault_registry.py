"""The fault registry with an injected clock, the pure decisions, and the resource effects (real threads)."""

from __future__ import annotations

import random
import time

import pytest

from sample_shop.kit.faults import (
    FaultEffects,
    FaultRegistry,
    MemoryLeak,
    decide_inbound,
    sample_latency_s,
)
from sample_shop.kit.faultspec import Fault, validate_fault_spec


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def fault_started(self, fault: Fault) -> None:
        self.events.append(("start", fault.kind, ""))

    def fault_ended(self, fault: Fault, reason: str) -> None:
        self.events.append(("end", fault.kind, reason))


def spec(kind: str, ttl: float = 10, **params: object):
    return validate_fault_spec({"kind": kind, "params": params, "ttl_s": ttl}, "orders")


def test_faults_expire_by_ttl_with_injected_clock() -> None:
    clock, recorder = Clock(), Recorder()
    registry = FaultRegistry("orders", clock=clock, listeners=[recorder])
    fault = registry.add(spec("error", ttl=10, status=503))
    assert registry.inbound and registry.inbound_decision("/checkout").status == 503
    clock.now += 9.9
    assert registry.expire_due() == [] and registry.get(fault.id) is not None
    clock.now += 0.1
    # the hot path ignores an expired fault at once, before the ticker has run
    assert registry.inbound_decision("/checkout") is None
    assert registry.active() == []
    assert [f.id for f in registry.expire_due()] == [fault.id]
    assert registry.inbound == ()
    assert recorder.events == [("start", "error", ""), ("end", "error", "expired")]


def test_views_per_target_and_remove_clear() -> None:
    clock, recorder = Clock(), Recorder()
    registry = FaultRegistry("orders", clock=clock, listeners=[recorder])
    a = registry.add(spec("outbound-refused", peer="payment"))
    registry.add(spec("db-slow", ms=20))
    registry.add(spec("latency", ms=5))
    assert (
        set(registry.outbound) == {"payment"} and len(registry.database) == 1 and len(registry.inbound) == 1
    )
    assert registry.outbound_decision("payment").refuse
    assert registry.outbound_decision("catalog") is None
    assert registry.database_decision().delay_s == pytest.approx(0.02)
    assert registry.counts()["db-slow"] == 1
    assert registry.remove(a.id) is not None and registry.remove(a.id) is None
    assert registry.outbound == {}
    assert len(registry.clear()) == 2
    assert registry.inbound == () and registry.database == ()
    assert [e for e in recorder.events if e[0] == "end"] == [
        ("end", "outbound-refused", "removed"),
        ("end", "db-slow", "removed"),
        ("end", "latency", "removed"),
    ]


def test_replace_keeps_identical_faults_running_and_ends_the_rest() -> None:
    clock, recorder = Clock(), Recorder()
    registry = FaultRegistry("orders", clock=clock, listeners=[recorder])
    keep = registry.add(spec("error"), fault_id="keep")
    registry.add(spec("latency", ms=5), fault_id="drop")
    pushed_keep = Fault("keep", keep.spec, clock.now, clock.now + 100)
    pushed_new = Fault("new", spec("hang"), clock.now, clock.now + 50)
    recorder.events.clear()
    registry.replace([pushed_keep, pushed_new])
    assert recorder.events == [("end", "latency", "replaced"), ("start", "hang", "")]
    assert registry.get("keep").expires_at == clock.now + 100  # expiry updated, not restarted
    assert {f.id for f in registry.active()} == {"keep", "new"}


def test_hang_event_is_set_when_the_fault_ends() -> None:
    clock = Clock()
    registry = FaultRegistry("orders", clock=clock)
    fault = registry.add(spec("hang"))
    event = registry.ended_event(fault.id)
    assert not event.is_set()
    registry.remove(fault.id)
    assert event.is_set()
    assert registry.ended_event("unknown").is_set()


def test_inbound_decision_route_filter_probability_and_combination() -> None:
    now = 0.0
    rng = random.Random(1)
    slow = Fault("a", spec("latency", ms=100), now, 100)
    broken = Fault("b", spec("error", status=502, route="/checkout"), now, 100)
    assert decide_inbound([slow, broken], "/orders", now, rng).status is None
    both = decide_inbound([slow, broken], "/checkout", now, rng)
    assert both.status == 502 and both.delay_s == pytest.approx(0.1) and both.fault_ids == ("a", "b")
    half = Fault("c", spec("error", probability=0.5), now, 100)
    hits = sum(decide_inbound([half], "/x", now, rng) is not None for _ in range(2000))
    assert 850 < hits < 1150
    assert decide_inbound([Fault("d", spec("error", probability=0.0), now, 100)], "/x", now, rng) is None


def test_latency_distributions() -> None:
    rng = random.Random(3)
    fixed = [sample_latency_s({"ms": 100, "jitter_ms": 20}, rng) for _ in range(500)]
    assert all(0.08 <= s <= 0.12 for s in fixed)
    normal = [
        sample_latency_s({"ms": 100, "jitter_ms": 10, "distribution": "normal"}, rng) for _ in range(2000)
    ]
    assert 0.098 < sum(normal) / len(normal) < 0.102
    pareto = sorted(
        sample_latency_s({"ms": 50, "distribution": "pareto", "alpha": 1.5}, rng) for _ in range(2000)
    )
    assert pareto[0] >= 0.05 and pareto[-1] > 0.5  # a heavy tail above the minimum
    assert sample_latency_s({"ms": 10, "distribution": "normal", "jitter_ms": 10_000}, rng) >= 0.0


def test_effects_keep_gauge_counts() -> None:
    seen: dict[str, int] = {}
    effects = FaultEffects("orders", seen.update)
    registry = FaultRegistry("orders", clock=Clock(), listeners=[effects])
    registry.add(spec("error"))
    registry.add(spec("error"))
    assert seen["error"] == 2 and seen["latency"] == 0
    registry.clear()
    assert seen["error"] == 0


def test_cpu_hog_burns_cpu_and_stops() -> None:
    effects = FaultEffects("orders")
    registry = FaultRegistry("orders", listeners=[effects])

    def cpu_over(seconds: float) -> float:
        start = time.process_time()
        time.sleep(seconds)
        return time.process_time() - start

    fault = registry.add(spec("cpu", threads=1, duty=1.0))
    burned = cpu_over(0.5)
    registry.remove(fault.id)
    idle = cpu_over(0.5)
    # ratios rather than absolute seconds: this shared machine gives the thread what it can spare
    assert burned > 0.05 and idle < burned / 4


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_memory_leak_grows_to_cap_and_is_released() -> None:
    before = _rss_mb()
    leak = MemoryLeak(rate_mb_s=200, cap_mb=40)
    deadline = time.monotonic() + 8  # 0.2 s unloaded; a loaded CI machine starves threads
    while leak.leaked_mb < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leak.leaked_mb == 40
    assert _rss_mb() - before > 35  # really resident, not just reserved
    leak.stop()
    assert leak.leaked_mb == 0
    assert _rss_mb() - before < 10
